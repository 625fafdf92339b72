/* daemon/instance/schedule.h: snapshots.schedule: cron expressions ("M H DoM Mon DoW":
 * "*", "N", "A-B", with ",", and "/step") and LXD's shorthands (@hourly, @daily,
 * @midnight, @weekly, @monthly, @yearly, @annually), several separated by ", ". */
#pragma once

#include <stdbool.h>
#include <time.h>

/* Whether `spec` fires in the minute of `tm` (local or UTC, as the caller decides).
 * -EINVAL for a malformed spec. */
int schedule_matches(const char *spec, const struct tm *tm, bool *ret);
