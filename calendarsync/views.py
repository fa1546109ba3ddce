"""Pages and endpoints of calendarsync: translate the request, make one domain call, render."""
