"""Protobuf field tables, as data: core/v1 volume sources and persistent volume claims.

Field numbers and types are those of the published k8s.io/api ``generated.proto`` files; JSON
names, pointer-ness and ``omitempty`` come from the matching Go struct tags (snapshot
10b39a39bcee). Notation: see control.api.kinds.fields.F.
"""

from __future__ import annotations

from control.api.kinds.fields import F, Field

__all__ = ["VOLUME_MESSAGES"]

# fmt: off
VOLUME_MESSAGES: dict[str, dict[int, Field]] = {
    "core.v1.AWSElasticBlockStoreVolumeSource": {
        1: F("volumeID", "string", "k"), 2: F("fsType"), 3: F("partition", "int32"),
        4: F("readOnly", "bool"),
    },
    "core.v1.AzureDiskVolumeSource": {
        1: F("diskName", "string", "k"), 2: F("diskURI", "string", "k"),
        3: F("cachingMode", "string", "p"), 4: F("fsType", "string", "p"),
        5: F("readOnly", "bool", "p"), 6: F("kind", "string", "p"),
    },
    "core.v1.AzureFileVolumeSource": {
        1: F("secretName", "string", "k"), 2: F("shareName", "string", "k"),
        3: F("readOnly", "bool"),
    },
    "core.v1.CSIVolumeSource": {
        1: F("driver", "string", "k"), 2: F("readOnly", "bool", "p"), 3: F("fsType", "string", "p"),
        4: F("volumeAttributes", "map<string,string>"),
        5: F("nodePublishSecretRef", "core.v1.LocalObjectReference", "p"),
    },
    "core.v1.CephFSVolumeSource": {
        1: F("monitors", "string", "r"), 2: F("path"), 3: F("user"), 4: F("secretFile"),
        5: F("secretRef", "core.v1.LocalObjectReference", "p"), 6: F("readOnly", "bool"),
    },
    "core.v1.CinderVolumeSource": {
        1: F("volumeID", "string", "k"), 2: F("fsType"), 3: F("readOnly", "bool"),
        4: F("secretRef", "core.v1.LocalObjectReference", "p"),
    },
    "core.v1.ClusterTrustBundleProjection": {
        1: F("name", "string", "p"), 2: F("signerName", "string", "p"),
        3: F("labelSelector", "meta.v1.LabelSelector", "p"), 4: F("path", "string", "k"),
        5: F("optional", "bool", "p"), 6: F("user", "int64", "p"),
    },
    "core.v1.ConfigMapProjection": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("items", "core.v1.KeyToPath", "r"),
        4: F("optional", "bool", "p"),
    },
    "core.v1.ConfigMapVolumeSource": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("items", "core.v1.KeyToPath", "r"),
        3: F("defaultMode", "int32", "p"), 4: F("optional", "bool", "p"),
        5: F("defaultUser", "int64", "p"),
    },
    "core.v1.DownwardAPIProjection": {1: F("items", "core.v1.DownwardAPIVolumeFile", "r")},
    "core.v1.DownwardAPIVolumeFile": {
        1: F("path", "string", "k"), 2: F("fieldRef", "core.v1.ObjectFieldSelector", "p"),
        3: F("resourceFieldRef", "core.v1.ResourceFieldSelector", "p"), 4: F("mode", "int32", "p"),
        5: F("user", "int64", "p"),
    },
    "core.v1.DownwardAPIVolumeSource": {
        1: F("items", "core.v1.DownwardAPIVolumeFile", "r"), 2: F("defaultMode", "int32", "p"),
        3: F("defaultUser", "int64", "p"),
    },
    "core.v1.EmptyDirVolumeSource": {
        1: F("medium"), 2: F("sizeLimit", "resource.Quantity", "p"), 3: F("mode", "int32", "p"),
    },
    "core.v1.EphemeralVolumeSource": {
        1: F("volumeClaimTemplate", "core.v1.PersistentVolumeClaimTemplate", "p"),
    },
    "core.v1.FCVolumeSource": {
        1: F("targetWWNs", "string", "r"), 2: F("lun", "int32", "p"), 3: F("fsType"),
        4: F("readOnly", "bool"), 5: F("wwids", "string", "r"),
    },
    "core.v1.FlexVolumeSource": {
        1: F("driver", "string", "k"), 2: F("fsType"),
        3: F("secretRef", "core.v1.LocalObjectReference", "p"), 4: F("readOnly", "bool"),
        5: F("options", "map<string,string>"),
    },
    "core.v1.FlockerVolumeSource": {1: F("datasetName"), 2: F("datasetUUID")},
    "core.v1.GCEPersistentDiskVolumeSource": {
        1: F("pdName", "string", "k"), 2: F("fsType"), 3: F("partition", "int32"),
        4: F("readOnly", "bool"),
    },
    "core.v1.GitRepoVolumeSource": {
        1: F("repository", "string", "k"), 2: F("revision"), 3: F("directory"),
    },
    "core.v1.GlusterfsVolumeSource": {
        1: F("endpoints", "string", "k"), 2: F("path", "string", "k"), 3: F("readOnly", "bool"),
    },
    "core.v1.HostPathVolumeSource": {1: F("path", "string", "k"), 2: F("type", "string", "p")},
    "core.v1.ISCSIVolumeSource": {
        1: F("targetPortal", "string", "k"), 2: F("iqn", "string", "k"), 3: F("lun", "int32", "k"),
        4: F("iscsiInterface"), 5: F("fsType"), 6: F("readOnly", "bool"),
        7: F("portals", "string", "r"), 8: F("chapAuthDiscovery", "bool"),
        10: F("secretRef", "core.v1.LocalObjectReference", "p"), 11: F("chapAuthSession", "bool"),
        12: F("initiatorName", "string", "p"),
    },
    "core.v1.ImageVolumeSource": {1: F("reference"), 2: F("pullPolicy")},
    "core.v1.KeyToPath": {
        1: F("key", "string", "k"), 2: F("path", "string", "k"), 3: F("mode", "int32", "p"),
        4: F("user", "int64", "p"),
    },
    "core.v1.ModifyVolumeStatus": {
        1: F("targetVolumeAttributesClassName"), 2: F("status", "string", "k"),
    },
    "core.v1.NFSVolumeSource": {
        1: F("server", "string", "k"), 2: F("path", "string", "k"), 3: F("readOnly", "bool"),
    },
    "core.v1.PersistentVolumeClaim": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.PersistentVolumeClaimSpec"),
        3: F("status", "core.v1.PersistentVolumeClaimStatus"),
    },
    "core.v1.PersistentVolumeClaimCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("lastProbeTime", "meta.v1.Time"), 4: F("lastTransitionTime", "meta.v1.Time"),
        5: F("reason"), 6: F("message"),
    },
    "core.v1.PersistentVolumeClaimSpec": {
        1: F("accessModes", "string", "r"), 2: F("resources", "core.v1.VolumeResourceRequirements"),
        3: F("volumeName"), 4: F("selector", "meta.v1.LabelSelector", "p"),
        5: F("storageClassName", "string", "p"), 6: F("volumeMode", "string", "p"),
        7: F("dataSource", "core.v1.TypedLocalObjectReference", "p"),
        8: F("dataSourceRef", "core.v1.TypedObjectReference", "p"),
        9: F("volumeAttributesClassName", "string", "p"),
    },
    "core.v1.PersistentVolumeClaimStatus": {
        1: F("phase"), 2: F("accessModes", "string", "r"),
        3: F("capacity", "map<string,resource.Quantity>"),
        4: F("conditions", "core.v1.PersistentVolumeClaimCondition", "r"),
        5: F("allocatedResources", "map<string,resource.Quantity>"),
        7: F("allocatedResourceStatuses", "map<string,string>"),
        8: F("currentVolumeAttributesClassName", "string", "p"),
        9: F("modifyVolumeStatus", "core.v1.ModifyVolumeStatus", "p"),
        10: F("healthStatus", "core.v1.VolumeHealthStatus", "p"),
    },
    "core.v1.PersistentVolumeClaimTemplate": {
        1: F("metadata", "meta.v1.ObjectMeta"), 2: F("spec", "core.v1.PersistentVolumeClaimSpec"),
    },
    "core.v1.PersistentVolumeClaimVolumeSource": {
        1: F("claimName", "string", "k"), 2: F("readOnly", "bool"),
    },
    "core.v1.PhotonPersistentDiskVolumeSource": {1: F("pdID", "string", "k"), 2: F("fsType")},
    "core.v1.PodCertificateProjection": {
        1: F("signerName"), 2: F("keyType"), 3: F("maxExpirationSeconds", "int32", "p"),
        4: F("credentialBundlePath"), 5: F("keyPath"), 6: F("certificateChainPath"),
        7: F("userAnnotations", "map<string,string>"), 8: F("user", "int64", "p"),
    },
    "core.v1.PortworxVolumeSource": {
        1: F("volumeID", "string", "k"), 2: F("fsType"), 3: F("readOnly", "bool"),
    },
    "core.v1.ProjectedVolumeSource": {
        1: F("sources", "core.v1.VolumeProjection", "r"), 2: F("defaultMode", "int32", "p"),
        3: F("defaultUser", "int64", "p"),
    },
    "core.v1.QuobyteVolumeSource": {
        1: F("registry", "string", "k"), 2: F("volume", "string", "k"), 3: F("readOnly", "bool"),
        4: F("user"), 5: F("group"), 6: F("tenant"),
    },
    "core.v1.RBDVolumeSource": {
        1: F("monitors", "string", "r"), 2: F("image", "string", "k"), 3: F("fsType"), 4: F("pool"),
        5: F("user"), 6: F("keyring"), 7: F("secretRef", "core.v1.LocalObjectReference", "p"),
        8: F("readOnly", "bool"),
    },
    "core.v1.ScaleIOVolumeSource": {
        1: F("gateway", "string", "k"), 2: F("system", "string", "k"),
        3: F("secretRef", "core.v1.LocalObjectReference", "p"), 4: F("sslEnabled", "bool"),
        5: F("protectionDomain"), 6: F("storagePool"), 7: F("storageMode"), 8: F("volumeName"),
        9: F("fsType"), 10: F("readOnly", "bool"),
    },
    "core.v1.SecretProjection": {
        1: F("", "core.v1.LocalObjectReference"), 2: F("items", "core.v1.KeyToPath", "r"),
        4: F("optional", "bool", "p"),
    },
    "core.v1.SecretVolumeSource": {
        1: F("secretName"), 2: F("items", "core.v1.KeyToPath", "r"),
        3: F("defaultMode", "int32", "p"), 4: F("optional", "bool", "p"),
        5: F("defaultUser", "int64", "p"),
    },
    "core.v1.ServiceAccountTokenProjection": {
        1: F("audience"), 2: F("expirationSeconds", "int64", "p"), 3: F("path", "string", "k"),
        4: F("user", "int64", "p"),
    },
    "core.v1.StorageOSVolumeSource": {
        1: F("volumeName"), 2: F("volumeNamespace"), 3: F("fsType"), 4: F("readOnly", "bool"),
        5: F("secretRef", "core.v1.LocalObjectReference", "p"),
    },
    "core.v1.TypedObjectReference": {
        1: F("apiGroup", "string", "pk"), 2: F("kind", "string", "k"), 3: F("name", "string", "k"),
        4: F("namespace", "string", "p"),
    },
    "core.v1.Volume": {1: F("name", "string", "k"), 2: F("", "core.v1.VolumeSource")},
    "core.v1.VolumeHealthStatus": {
        1: F("healthConditions", "core.v1.VolumeHealthCondition", "r"),
        2: F("lastTransitionTime", "meta.v1.Time"),
    },
    "core.v1.VolumeProjection": {
        1: F("secret", "core.v1.SecretProjection", "p"),
        2: F("downwardAPI", "core.v1.DownwardAPIProjection", "p"),
        3: F("configMap", "core.v1.ConfigMapProjection", "p"),
        4: F("serviceAccountToken", "core.v1.ServiceAccountTokenProjection", "p"),
        5: F("clusterTrustBundle", "core.v1.ClusterTrustBundleProjection", "p"),
        6: F("podCertificate", "core.v1.PodCertificateProjection", "p"),
    },
    "core.v1.VolumeResourceRequirements": {
        1: F("limits", "map<string,resource.Quantity>"),
        2: F("requests", "map<string,resource.Quantity>"),
    },
    "core.v1.VolumeSource": {
        1: F("hostPath", "core.v1.HostPathVolumeSource", "p"),
        2: F("emptyDir", "core.v1.EmptyDirVolumeSource", "p"),
        3: F("gcePersistentDisk", "core.v1.GCEPersistentDiskVolumeSource", "p"),
        4: F("awsElasticBlockStore", "core.v1.AWSElasticBlockStoreVolumeSource", "p"),
        5: F("gitRepo", "core.v1.GitRepoVolumeSource", "p"),
        6: F("secret", "core.v1.SecretVolumeSource", "p"),
        7: F("nfs", "core.v1.NFSVolumeSource", "p"),
        8: F("iscsi", "core.v1.ISCSIVolumeSource", "p"),
        9: F("glusterfs", "core.v1.GlusterfsVolumeSource", "p"),
        10: F("persistentVolumeClaim", "core.v1.PersistentVolumeClaimVolumeSource", "p"),
        11: F("rbd", "core.v1.RBDVolumeSource", "p"),
        12: F("flexVolume", "core.v1.FlexVolumeSource", "p"),
        13: F("cinder", "core.v1.CinderVolumeSource", "p"),
        14: F("cephfs", "core.v1.CephFSVolumeSource", "p"),
        15: F("flocker", "core.v1.FlockerVolumeSource", "p"),
        16: F("downwardAPI", "core.v1.DownwardAPIVolumeSource", "p"),
        17: F("fc", "core.v1.FCVolumeSource", "p"),
        18: F("azureFile", "core.v1.AzureFileVolumeSource", "p"),
        19: F("configMap", "core.v1.ConfigMapVolumeSource", "p"),
        20: F("vsphereVolume", "core.v1.VsphereVirtualDiskVolumeSource", "p"),
        21: F("quobyte", "core.v1.QuobyteVolumeSource", "p"),
        22: F("azureDisk", "core.v1.AzureDiskVolumeSource", "p"),
        23: F("photonPersistentDisk", "core.v1.PhotonPersistentDiskVolumeSource", "p"),
        24: F("portworxVolume", "core.v1.PortworxVolumeSource", "p"),
        25: F("scaleIO", "core.v1.ScaleIOVolumeSource", "p"),
        26: F("projected", "core.v1.ProjectedVolumeSource", "p"),
        27: F("storageos", "core.v1.StorageOSVolumeSource", "p"),
        28: F("csi", "core.v1.CSIVolumeSource", "p"),
        29: F("ephemeral", "core.v1.EphemeralVolumeSource", "p"),
        30: F("image", "core.v1.ImageVolumeSource", "p"),
    },
    "core.v1.VsphereVirtualDiskVolumeSource": {
        1: F("volumePath", "string", "k"), 2: F("fsType"), 3: F("storagePolicyName"),
        4: F("storagePolicyID"),
    },
}
# fmt: on
