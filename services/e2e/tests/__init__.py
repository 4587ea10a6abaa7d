"""The end-to-end suite: the deployed classifier over HTTP, and the records it shipped."""
