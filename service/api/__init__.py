"""gRPC layer: thin servicers and the interceptors (limits, auth, domain errors -> status codes).

Import the servicers from their modules (``banditroute.service.api.router``,
``banditroute.service.api.admin``); this package re-exports only the interceptor names, so importing
it stays light.
"""

from banditroute.service.api.interceptors import (
    STATUS_OF_CODE,
    Authenticator,
    ServiceInterceptor,
    check_tenant,
    current_tenant,
    request_id_var,
    tenant_var,
)

__all__ = [
    "STATUS_OF_CODE",
    "Authenticator",
    "ServiceInterceptor",
    "check_tenant",
    "current_tenant",
    "request_id_var",
    "tenant_var",
]
