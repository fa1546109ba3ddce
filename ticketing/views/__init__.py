"""Pages and endpoints of ticketing: the customer's tickets (`tickets`) and the door (`door`)."""
