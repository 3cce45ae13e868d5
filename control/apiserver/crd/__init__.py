"""CustomResourceDefinitions: the apiextensions half of the apiserver.

A CRD (``apiextensions.k8s.io/v1``) is stored like any built-in object; every apiserver learns
it through its watch cache (:mod:`.catalog`) and from then on serves its custom resources
through the same pipeline as built-in kinds, with a :class:`~.resource.CustomResourceDef`
carrying what differs: the structural schema (:mod:`.schema`, :mod:`.values`, :mod:`.cel`),
printer columns (:mod:`.printing`), scale paths, selectable fields and versions.  The CRD's
conditions and the cleanup of its objects on deletion are :mod:`.controller`'s.

This package imports nothing at import time: the strategies table imports
:mod:`.definition` and the registry imports :mod:`.resource`.
"""
