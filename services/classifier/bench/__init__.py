"""`make bench`: the service against its yardsticks, measured in one run on the same cores."""
