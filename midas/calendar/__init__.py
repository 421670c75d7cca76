"""Calendar sync (issue 9): iCalendar feeds out, external busy blocks in."""
