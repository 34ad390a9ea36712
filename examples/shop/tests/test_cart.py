import unittest
from decimal import Decimal

from shop import Cart, Item


class CartTest(unittest.TestCase):
    def test_subtotal(self) -> None:
        cart = Cart()
        cart.add(Item("tea", Decimal("3.50"), 2))
        cart.add(Item("cup", Decimal("7.25")))
        self.assertEqual(cart.subtotal(), Decimal("14.25"))

    def test_rejects_empty_lines(self) -> None:
        with self.assertRaises(ValueError):
            Cart().add(Item("ghost", Decimal("1"), 0))


if __name__ == "__main__":
    unittest.main()
