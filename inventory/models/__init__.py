"""What a business sells and what it sells it with.

One layer serves appointments, classes and ticketed events:

* **Time on a resource** (a stylist, a room, one of four massage tables) is an `Allocation` of a
  `ResourceUnit` over a `tstzrange` that includes the buffers. An exclusion constraint makes two
  active allocations of one unit overlap impossible, whoever wrote them. A resource with a pool count
  has that many units.
* **Counted places** (a class session, a zone of a concert, a ticket type with a limit) are
  `CapacityCounter` rows with `capacity`, `held` and `sold` and a CHECK that `held + sold` never
  exceeds `capacity`.
* **Seats** are `SeatAllocation` rows, unique per (session, seat) while active.

Schedules are wall-clock rules in the location's IANA zone; instants are stored in UTC and periods
are half-open `[start, end)`.

One module per part: `fields` (validators and expressions), `places`, `hours`, `offerings`,
`seating` and `sessions` (including the capacity rows). Everything is re-exported here, so
`from inventory.models import Offering` and the paths migrations name keep working.
"""

from inventory.models.fields import (
    CURRENCY_VALIDATOR,
    REMINDER_HOURS_VALIDATOR,
    TstzRange,
    WallClockRange,
    validate_time_zone,
)
from inventory.models.hours import Blackout, BusyBlock, DateOverride, Weekday, WorkingHours
from inventory.models.offerings import CancellationPolicy, Category, Offering, RefundTier, ResourceRequirement
from inventory.models.places import Location, Resource, ResourceUnit
from inventory.models.seating import PriceTier, Seat, TicketType, Zone
from inventory.models.sessions import Allocation, CapacityCounter, SeatAllocation, Session, SessionSeries

__all__ = [
    "CURRENCY_VALIDATOR",
    "REMINDER_HOURS_VALIDATOR",
    "Allocation",
    "Blackout",
    "BusyBlock",
    "CancellationPolicy",
    "CapacityCounter",
    "Category",
    "DateOverride",
    "Location",
    "Offering",
    "PriceTier",
    "RefundTier",
    "Resource",
    "ResourceRequirement",
    "ResourceUnit",
    "Seat",
    "SeatAllocation",
    "Session",
    "SessionSeries",
    "TicketType",
    "TstzRange",
    "WallClockRange",
    "Weekday",
    "WorkingHours",
    "Zone",
    "validate_time_zone",
]
