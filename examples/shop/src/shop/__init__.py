"""A tiny shop: carts, prices and discounts (the example project buildyard's quick start runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

__version__ = "1.4.0"


@dataclass(frozen=True)
class Item:
    """A product line: name, unit price, quantity."""

    name: str
    price: Decimal
    quantity: int = 1

    @property
    def total(self) -> Decimal:
        """Price times quantity."""
        return self.price * self.quantity


@dataclass
class Cart:
    """A shopping cart."""

    items: list[Item] = field(default_factory=list)

    def add(self, item: Item) -> None:
        """Add a line; quantities must be positive."""
        if item.quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items.append(item)

    def subtotal(self) -> Decimal:
        """Sum of all lines."""
        return sum((i.total for i in self.items), Decimal("0"))

    def total(self, discount_percent: int = 0, vat_percent: int = 20) -> Decimal:
        """Subtotal minus discount, plus VAT, rounded to cents."""
        if not 0 <= discount_percent <= 100:
            raise ValueError("discount must be between 0 and 100")
        net = self.subtotal() * (100 - discount_percent) / 100
        gross = net * (100 + vat_percent) / 100
        return gross.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
