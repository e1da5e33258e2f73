"""Payment method plug-ins of the hosted payment page (entry-point group ``paymux.paymethods``)."""

from paymux.invoices.methods.base import (
    CallbackEvent,
    CallbackRejected,
    MethodError,
    PayMethod,
    Started,
    UnknownMethod,
    method_class,
    method_name,
)

__all__ = [
    "CallbackEvent",
    "CallbackRejected",
    "MethodError",
    "PayMethod",
    "Started",
    "UnknownMethod",
    "method_class",
    "method_name",
]
