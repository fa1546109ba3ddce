"""Pages and endpoints of payments: translate the request, make one domain call, render."""
