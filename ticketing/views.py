"""Pages and endpoints of ticketing: translate the request, make one domain call, render."""
