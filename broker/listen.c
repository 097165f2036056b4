/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Accepting on a listening socket without spinning. The listening sockets are level-triggered
 * sd-event sources: if accept() fails because the process (EMFILE) or the system (ENFILE) is out of
 * file descriptors, or the kernel is out of memory, the pending connection stays queued and the source
 * would fire again at once, forever, flooding the log and starving everyone else. So on such an error
 * the source is switched off for a short while and the error is logged once per pause. The timer that
 * switches it back on must not need a file descriptor itself at that moment: listen_prepare() makes
 * sd-event allocate its CLOCK_MONOTONIC timerfd up front.
 */

#include <errno.h>
#include <sys/socket.h>

#include "broker/listen.h"
#include "broker/log.h"
#include "common/time-util.h"

#define ACCEPT_PAUSE_USEC (250 * USEC_PER_MSEC)

static int on_resume(sd_event_source *timer, uint64_t usec, void *userdata) {
        sd_event_source *listener = userdata;

        (void) sd_event_source_set_enabled(listener, SD_EVENT_ON);
        sd_event_source_unref(listener);
        sd_event_source_disable_unref(timer);
        return 0;
}

static int on_never(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

/**
 * listen_prepare() - make sure pausing accepts needs no new file descriptor
 * @e: the event loop the listening sockets are on
 *
 * A floating, never-firing CLOCK_MONOTONIC timer keeps sd-event's timerfd for that clock allocated
 * for the life of the loop; the pause timers added at EMFILE then cost no file descriptor.
 *
 * Return: 0 or a negative errno
 */
int listen_prepare(sd_event *e) {
        return sd_event_add_time(e, NULL, CLOCK_MONOTONIC, USEC_INFINITY, 0, on_never, NULL);
}

/**
 * listen_accept() - accept one connection from a listening socket's event source
 * @s: the listening socket's io event source
 * @listen_fd: the listening socket
 * @what: what the socket is, for the log ("varlink", "LoadCredential=")
 *
 * Return: the connection (non-blocking, close-on-exec), or a negative errno: -EAGAIN when there was
 * nothing to accept or accepting is paused after running out of resources
 */
int listen_accept(sd_event_source *s, int listen_fd, const char *what) {
        sd_event_source *timer;
        int fd, r;

        fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
                return fd;
        r = -errno;
        if (r == -EAGAIN || r == -EINTR)
                return -EAGAIN;
        if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
                log_warning_errno(r, "Failed to accept a %s connection: %m; pausing accepts for %llums.", what,
                                  (unsigned long long) (ACCEPT_PAUSE_USEC / USEC_PER_MSEC));
                /* The timer holds a reference on the listener and drops itself when it fires. */
                if (sd_event_source_set_enabled(s, SD_EVENT_OFF) >= 0 &&
                    sd_event_add_time_relative(sd_event_source_get_event(s), &timer, CLOCK_MONOTONIC,
                                               ACCEPT_PAUSE_USEC, 0, on_resume, s) >= 0)
                        sd_event_source_ref(s);
                else
                        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
                return -EAGAIN;
        }
        /* The peer went away between queueing and accept(), or similar: nothing to do. */
        log_debug_errno(r, "Failed to accept a %s connection: %m", what);
        return -EAGAIN;
}
