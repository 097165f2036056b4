/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdbool.h>
#include <sys/epoll.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "broker/curl-glue.h"
#include "common/time-util.h"

struct CurlGlue {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        CurlGlueFinished on_finished;
        void *userdata;

        /* Every io source we made, so that none outlives the glue whatever curl reports. */
        sd_event_source **ios;
        size_t n_ios, n_allocated;

        /* Finished transfers not yet handed over: one per dispatch of `defer`, so that a cached Get
         * that arrived meanwhile is answered between curl's reading of an answer and our handling
         * of it, not after both (tools/bench figure 3). */
        struct CurlGlueDone {
                CURL *easy;     /* NULL: removed meanwhile */
                CURLcode result;
        } *done;
        size_t n_done, done_head, n_done_allocated;
        sd_event_source *defer;

        int64_t priority;       /* of every source, while not raised */
        bool raised;            /* at SD_EVENT_PRIORITY_NORMAL until the next dispatch */

        bool global_init;
};

static void curl_glue_forget_io(CurlGlue *g, sd_event_source *io) {
        for (size_t i = 0; i < g->n_ios; i++)
                if (g->ios[i] == io) {
                        g->ios[i] = g->ios[--g->n_ios];
                        break;
                }
        (void) sd_event_source_disable_unref(io);
}

static int curl_glue_remember_io(CurlGlue *g, sd_event_source *io) {
        if (g->n_ios >= g->n_allocated) {
                size_t n = MAX(g->n_allocated * 2, (size_t) 8);
                sd_event_source **a = reallocarray(g->ios, n, sizeof(*a));

                if (!a)
                        return -ENOMEM;
                g->ios = a;
                g->n_allocated = n;
        }
        g->ios[g->n_ios++] = io;
        return 0;
}

static int64_t curl_glue_priority(CurlGlue *g) {
        return g->raised ? SD_EVENT_PRIORITY_NORMAL : g->priority;
}

static void curl_glue_apply_priority(CurlGlue *g) {
        int64_t p = curl_glue_priority(g);

        for (size_t i = 0; i < g->n_ios; i++)
                (void) sd_event_source_set_priority(g->ios[i], p);
        if (g->timer)
                (void) sd_event_source_set_priority(g->timer, p);
        if (g->defer)
                (void) sd_event_source_set_priority(g->defer, p);
}

/* At the start of every dispatch: a raise lasts until the glue has had its turn. */
static void curl_glue_dispatched(CurlGlue *g) {
        if (!g->raised)
                return;
        g->raised = false;
        curl_glue_apply_priority(g);
}

static int curl_glue_on_defer(sd_event_source *s, void *userdata) {
        CurlGlue *g = userdata;
        struct CurlGlueDone d = {};

        curl_glue_dispatched(g);
        while (!d.easy && g->done_head < g->n_done)
                d = g->done[g->done_head++];
        if (g->done_head >= g->n_done) {
                g->done_head = g->n_done = 0;
                (void) sd_event_source_set_enabled(g->defer, SD_EVENT_OFF);
        }
        if (d.easy)
                g->on_finished(g, d.easy, d.result, g->userdata);
        return 0;
}

static int curl_glue_queue_done(CurlGlue *g, CURL *easy, CURLcode result) {
        int r;

        if (g->n_done >= g->n_done_allocated) {
                size_t n = MAX(g->n_done_allocated * 2, (size_t) 8);
                struct CurlGlueDone *a = reallocarray(g->done, n, sizeof(*a));

                if (!a)
                        return -ENOMEM;
                g->done = a;
                g->n_done_allocated = n;
        }
        if (!g->defer) {
                r = sd_event_add_defer(g->event, &g->defer, curl_glue_on_defer, g);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(g->defer, "curl-done");
                (void) sd_event_source_set_priority(g->defer, curl_glue_priority(g));
        } else if (sd_event_source_set_enabled(g->defer, SD_EVENT_ON) < 0)
                return -EIO;
        g->done[g->n_done++] = (struct CurlGlueDone) { .easy = easy, .result = result };
        return 0;
}

static void curl_glue_check_finished(CurlGlue *g) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(g->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                /* Without room to queue it, handed over at once rather than lost. */
                if (curl_glue_queue_done(g, msg->easy_handle, msg->data.result) < 0)
                        g->on_finished(g, msg->easy_handle, msg->data.result, g->userdata);
        }
}

static int curl_glue_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CurlGlue *g = userdata;
        int action = 0, running;

        curl_glue_dispatched(g);
        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;

        if (curl_multi_socket_action(g->multi, fd, action, &running) != CURLM_OK)
                return -EIO;

        curl_glue_check_finished(g);
        return 0;
}

static int curl_glue_socket_callback(CURL *easy, curl_socket_t fd, int action, void *userdata, void *socketp) {
        sd_event_source *io = socketp;
        CurlGlue *g = userdata;
        uint32_t events = 0;
        int r;

        if (action == CURL_POLL_REMOVE) {
                if (io) {
                        curl_glue_forget_io(g, io);
                        (void) curl_multi_assign(g->multi, fd, NULL);
                }
                return 0;
        }

        if (action == CURL_POLL_IN)
                events = EPOLLIN;
        else if (action == CURL_POLL_OUT)
                events = EPOLLOUT;
        else if (action == CURL_POLL_INOUT)
                events = EPOLLIN | EPOLLOUT;

        if (io) {
                r = sd_event_source_set_io_events(io, events);
                if (r < 0)
                        return -1;
                r = sd_event_source_set_enabled(io, SD_EVENT_ON);
                if (r < 0)
                        return -1;
                return 0;
        }

        r = sd_event_add_io(g->event, &io, fd, events, curl_glue_on_io, g);
        if (r < 0)
                return -1;
        (void) sd_event_source_set_description(io, "curl-io");
        (void) sd_event_source_set_priority(io, curl_glue_priority(g));

        if (curl_glue_remember_io(g, io) < 0) {
                (void) sd_event_source_disable_unref(io);
                return -1;
        }

        if (curl_multi_assign(g->multi, fd, io) != CURLM_OK) {
                curl_glue_forget_io(g, io);
                return -1;
        }

        return 0;
}

static int curl_glue_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        CurlGlue *g = userdata;
        int running;

        curl_glue_dispatched(g);
        if (curl_multi_socket_action(g->multi, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK)
                return -EIO;

        curl_glue_check_finished(g);
        return 0;
}

static int curl_glue_timer_callback(CURLM *multi, long timeout_ms, void *userdata) {
        CurlGlue *g = userdata;
        usec_t usec;
        int r;

        if (timeout_ms < 0) {
                if (g->timer)
                        (void) sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
                return 0;
        }

        usec = usec_add(now(CLOCK_BOOTTIME), (usec_t) timeout_ms * USEC_PER_MSEC);

        if (g->timer) {
                r = sd_event_source_set_time(g->timer, usec);
                if (r < 0)
                        return -1;
                r = sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT);
                return r < 0 ? -1 : 0;
        }

        r = sd_event_add_time(g->event, &g->timer, CLOCK_BOOTTIME, usec, USEC_PER_MSEC,
                              curl_glue_on_timer, g);
        if (r < 0)
                return -1;
        (void) sd_event_source_set_description(g->timer, "curl-timer");
        (void) sd_event_source_set_priority(g->timer, curl_glue_priority(g));
        return 0;
}

/**
 * curl_glue_new() - create a multi handle driven by @e
 * @e:           event loop (a reference is taken)
 * @on_finished: called for every finished transfer, from the event loop
 * @userdata:    passed to @on_finished
 * @ret:         the new glue
 *
 * Return: 0, -ENOMEM, or -EIO if libcurl refuses the setup.
 */
int curl_glue_new(sd_event *e, CurlGlueFinished on_finished, void *userdata, CurlGlue **ret) {
        _cleanup_(curl_glue_freep) CurlGlue *g = NULL;

        if (!e || !on_finished || !ret)
                return -EINVAL;

        /* Reference-counted inside libcurl; implicit initialisation would do too, but only by luck. */
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(g);
                return -EIO;
        }
        g->global_init = true;
        g->event = sd_event_ref(e);
        g->on_finished = on_finished;
        g->userdata = userdata;
        g->priority = SD_EVENT_PRIORITY_NORMAL;

        g->multi = curl_multi_init();
        if (!g->multi)
                return -ENOMEM;

        if (curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, curl_glue_socket_callback) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, curl_glue_timer_callback) != CURLM_OK ||
            curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g) != CURLM_OK)
                return -EIO;

        *ret = TAKE_PTR(g);
        return 0;
}

/**
 * curl_glue_free() - free the multi handle and all event sources
 *
 * Transfers still added are removed but not freed: their owners free their easy handles.
 *
 * Return: NULL
 */
CurlGlue *curl_glue_free(CurlGlue *g) {
        if (!g)
                return NULL;

        if (g->multi)
                (void) curl_multi_cleanup(g->multi);
        while (g->n_ios > 0)
                curl_glue_forget_io(g, g->ios[g->n_ios - 1]);
        free(g->ios);
        g->timer = sd_event_source_disable_unref(g->timer);
        g->defer = sd_event_source_disable_unref(g->defer);
        free(g->done);
        sd_event_unref(g->event);
        if (g->global_init)
                curl_global_cleanup();
        free(g);
        return NULL;
}

/**
 * curl_glue_set_priority() - the sd-event priority of every source of the glue, now and later
 */
void curl_glue_set_priority(CurlGlue *g, int64_t priority) {
        g->priority = priority;
        curl_glue_apply_priority(g);
}

/**
 * curl_glue_raise() - serve the glue at SD_EVENT_PRIORITY_NORMAL until its next dispatch
 *
 * For a caller that keeps a lower priority from being starved: O(sockets) once, then back by itself.
 */
void curl_glue_raise(CurlGlue *g) {
        if (g->raised || g->priority <= SD_EVENT_PRIORITY_NORMAL)
                return;
        g->raised = true;
        curl_glue_apply_priority(g);
}

/**
 * curl_glue_add() - start a transfer
 *
 * Return: 0, or -EIO if libcurl refused the handle.
 */
int curl_glue_add(CurlGlue *g, CURL *easy) {
        if (curl_multi_add_handle(g->multi, easy) != CURLM_OK)
                return -EIO;
        return 0;
}

/**
 * curl_glue_remove() - stop a transfer (finished or not); the easy handle stays with the caller
 */
void curl_glue_remove(CurlGlue *g, CURL *easy) {
        if (!g || !easy)
                return;
        for (size_t i = g->done_head; i < g->n_done; i++)
                if (g->done[i].easy == easy)
                        g->done[i].easy = NULL;
        (void) curl_multi_remove_handle(g->multi, easy);
}
