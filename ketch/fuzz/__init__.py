"""``ketch fuzz``: machine-generated bad input against a real cluster — requests generated
from the apiserver's own OpenAPI (schemathesis) and Hypothesis strategies for what it cannot
reach, malformed CBOR against the store — checked for 5xx answers, crashes, hangs, anything
stored by a refused request, and memory growth."""
