"""Fragment alignment model (Harwath & Glass 2015, sec. 2.3): image regions and spoken words in one space."""
