"""Buying energy and the wallet: buy, pay, purchase status, refunds (URL namespace `payments`)."""
