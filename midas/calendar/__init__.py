"""Calendar sync: iCalendar feeds out, external busy blocks in."""
