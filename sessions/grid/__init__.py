"""Smart charging and demand response: prices, the planner, grid events and their bonus, the grid API."""
