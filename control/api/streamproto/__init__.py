"""The wire protocols between kubectl, the apiserver and the node agent's streaming server:
the exec/attach WebSocket channels (:mod:`.channels`), SPDY/3.1 framing for port-forward
(:mod:`.spdy`), the agent's resource-usage summary (:mod:`.summary`), and the streaming
requests' query options and the agent's URL paths (:mod:`.options`).  Pure code, imported by
both the apiserver and the node agent.
"""

from __future__ import annotations
