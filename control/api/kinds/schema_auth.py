"""Protobuf field tables, as data: authorization/v1 and related groups.

Groups: authorization/v1, authentication/v1, rbac/v1, coordination/v1.

Field numbers and types are those of the published k8s.io/api ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
10b39a39bcee). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["AUTH_MESSAGES"]

# fmt: off
AUTH_MESSAGES: dict[str, dict[int, Field]] = {
    "authentication.v1.AttestationValue": {1: F("items", "string", "r")},
    "authentication.v1.BoundObjectReference": {
        1: F("kind"), 2: F("apiVersion"), 3: F("name"), 4: F("uid"),
    },
    "authentication.v1.ExtraValue": {1: F("items", "string", "r")},
    "authentication.v1.SelfSubjectReview": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("status", "authentication.v1.SelfSubjectReviewStatus"),
    },
    "authentication.v1.SelfSubjectReviewStatus": {1: F("userInfo", "authentication.v1.UserInfo")},
    "authentication.v1.TokenRequest": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "authentication.v1.TokenRequestSpec"),
        3: F("status", "authentication.v1.TokenRequestStatus"),
    },
    "authentication.v1.TokenRequestSpec": {
        1: F("audiences", "string", "r"),
        3: F("boundObjectRef", "authentication.v1.BoundObjectReference", "p"),
        4: F("expirationSeconds", "int64", "pk"),
        5: F("attestations", "map<string,authentication.v1.AttestationValue>"),
    },
    "authentication.v1.TokenRequestStatus": {
        1: F("token", "string", "k"), 2: F("expirationTimestamp", "meta.v1.Time"),
    },
    "authentication.v1.TokenReview": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "authentication.v1.TokenReviewSpec"),
        3: F("status", "authentication.v1.TokenReviewStatus"),
    },
    "authentication.v1.TokenReviewSpec": {1: F("token"), 2: F("audiences", "string", "r")},
    "authentication.v1.TokenReviewStatus": {
        1: F("authenticated", "bool"), 2: F("user", "authentication.v1.UserInfo"), 3: F("error"),
        4: F("audiences", "string", "r"),
    },
    "authentication.v1.UserInfo": {
        1: F("username"), 2: F("uid"), 3: F("groups", "string", "r"),
        4: F("extra", "map<string,authentication.v1.ExtraValue>"),
    },
    "authorization.v1.ExtraValue": {1: F("items", "string", "r")},
    "authorization.v1.FieldSelectorAttributes": {
        1: F("rawSelector"), 2: F("requirements", "meta.v1.FieldSelectorRequirement", "r"),
    },
    "authorization.v1.LabelSelectorAttributes": {
        1: F("rawSelector"), 2: F("requirements", "meta.v1.LabelSelectorRequirement", "r"),
    },
    "authorization.v1.LocalSubjectAccessReview": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("spec", "authorization.v1.SubjectAccessReviewSpec"),
        3: F("status", "authorization.v1.SubjectAccessReviewStatus"),
    },
    "authorization.v1.NonResourceAttributes": {1: F("path"), 2: F("verb")},
    "authorization.v1.NonResourceRule": {
        1: F("verbs", "string", "r"), 2: F("nonResourceURLs", "string", "r"),
    },
    "authorization.v1.ResourceAttributes": {
        1: F("namespace"), 2: F("verb"), 3: F("group"), 4: F("version"), 5: F("resource"),
        6: F("subresource"), 7: F("name"),
        8: F("fieldSelector", "authorization.v1.FieldSelectorAttributes", "p"),
        9: F("labelSelector", "authorization.v1.LabelSelectorAttributes", "p"),
    },
    "authorization.v1.ResourceRule": {
        1: F("verbs", "string", "r"), 2: F("apiGroups", "string", "r"),
        3: F("resources", "string", "r"), 4: F("resourceNames", "string", "r"),
    },
    "authorization.v1.SelfSubjectAccessReview": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("spec", "authorization.v1.SelfSubjectAccessReviewSpec"),
        3: F("status", "authorization.v1.SubjectAccessReviewStatus"),
    },
    "authorization.v1.SelfSubjectAccessReviewSpec": {
        1: F("resourceAttributes", "authorization.v1.ResourceAttributes", "p"),
        2: F("nonResourceAttributes", "authorization.v1.NonResourceAttributes", "p"),
    },
    "authorization.v1.SelfSubjectRulesReview": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("spec", "authorization.v1.SelfSubjectRulesReviewSpec"),
        3: F("status", "authorization.v1.SubjectRulesReviewStatus"),
    },
    "authorization.v1.SelfSubjectRulesReviewSpec": {1: F("namespace")},
    "authorization.v1.SubjectAccessReview": {
        1: F("metadata", "meta.v1.ObjectMeta"),
        2: F("spec", "authorization.v1.SubjectAccessReviewSpec"),
        3: F("status", "authorization.v1.SubjectAccessReviewStatus"),
    },
    "authorization.v1.SubjectAccessReviewSpec": {
        1: F("resourceAttributes", "authorization.v1.ResourceAttributes", "p"),
        2: F("nonResourceAttributes", "authorization.v1.NonResourceAttributes", "p"), 3: F("user"),
        4: F("groups", "string", "r"), 5: F("extra", "map<string,authorization.v1.ExtraValue>"),
        6: F("uid"),
    },
    "authorization.v1.SubjectAccessReviewStatus": {
        1: F("allowed", "bool", "k"), 2: F("reason"), 3: F("evaluationError"),
        4: F("denied", "bool"),
    },
    "authorization.v1.SubjectRulesReviewStatus": {
        1: F("resourceRules", "authorization.v1.ResourceRule", "r"),
        2: F("nonResourceRules", "authorization.v1.NonResourceRule", "r"),
        3: F("incomplete", "bool", "k"), 4: F("evaluationError"),
    },
    "coordination.v1.Lease": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "coordination.v1.LeaseSpec"),
    },
    "coordination.v1.LeaseSpec": {
        1: F("holderIdentity", "string", "p"), 2: F("leaseDurationSeconds", "int32", "p"),
        3: F("acquireTime", "meta.v1.MicroTime", "p"), 4: F("renewTime", "meta.v1.MicroTime", "p"),
        5: F("leaseTransitions", "int32", "p"), 6: F("strategy", "string", "p"),
        7: F("preferredHolder", "string", "p"),
    },
    "rbac.v1.AggregationRule": {1: F("clusterRoleSelectors", "meta.v1.LabelSelector", "r")},
    "rbac.v1.ClusterRole": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("rules", "rbac.v1.PolicyRule", "r"),
        3: F("aggregationRule", "rbac.v1.AggregationRule", "p"),
    },
    "rbac.v1.ClusterRoleBinding": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("subjects", "rbac.v1.Subject", "r"),
        3: F("roleRef", "rbac.v1.RoleRef"),
    },
    "rbac.v1.PolicyRule": {
        1: F("verbs", "string", "r"), 2: F("apiGroups", "string", "r"),
        3: F("resources", "string", "r"), 4: F("resourceNames", "string", "r"),
        5: F("nonResourceURLs", "string", "r"),
    },
    "rbac.v1.Role": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("rules", "rbac.v1.PolicyRule", "r"),
    },
    "rbac.v1.RoleBinding": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("subjects", "rbac.v1.Subject", "r"),
        3: F("roleRef", "rbac.v1.RoleRef"),
    },
    "rbac.v1.RoleRef": {
        1: F("apiGroup", "string", "k"), 2: F("kind", "string", "k"), 3: F("name", "string", "k"),
    },
    "rbac.v1.Subject": {
        1: F("kind", "string", "k"), 2: F("apiGroup"), 3: F("name", "string", "k"),
        4: F("namespace"),
    },
}
# fmt: on
