"""Territory: city > district > street > community > grid, and the point locator."""
