"""The one error of the payment elements."""


class ElementError(ValueError):
    """A value the element's standard does not allow; ``field`` names it (for a 422 problem)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
