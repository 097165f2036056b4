/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

int getpeercred(int fd, struct ucred *ret);
int getpeergroups(int fd, gid_t **ret, size_t *ret_n);
