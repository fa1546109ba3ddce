"""Pages and endpoints of booking: translate the request, make one domain call, render."""
