/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

int listen_prepare(sd_event *e);
int listen_accept(sd_event_source *s, int listen_fd, const char *what);
