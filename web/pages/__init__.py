"""Driver pages (server-rendered): the home page, charging, vehicles, buying and the wallet."""
