"""Bearer-token authorization: who is calling, and what FHIRcast scopes allow.

``backend`` chooses how tokens are checked (``jwt`` or ``introspection``);
both produce a :class:`~fhircast_hub.auth.principal.Principal`, which
``scopes`` checks against each subscribe, publish and context read.
"""
