"""Data slices: the shipped data sets, slicing, the seed's drift injection, and the client of the
router that serves them."""
