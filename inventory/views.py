"""Pages and endpoints of inventory: translate the request, make one domain call, render."""
