"""The ``ironlog`` command: ``launcher`` is the console script (it explains
itself on the base install), ``commands`` the click groups."""
