import unittest
from decimal import Decimal

from shop import Cart, Item


class PricingTest(unittest.TestCase):
    def test_discount_and_vat(self) -> None:
        cart = Cart([Item("book", Decimal("10.00"), 3)])
        self.assertEqual(cart.total(discount_percent=10, vat_percent=20), Decimal("32.40"))

    def test_discount_bounds(self) -> None:
        with self.assertRaises(ValueError):
            Cart().total(discount_percent=120)


if __name__ == "__main__":
    unittest.main()
