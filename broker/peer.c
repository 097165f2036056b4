/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One varlink connection on io.vlease.Broker.
 *
 * Who is calling comes from the kernel: SO_PEERCRED and SO_PEERGROUPS, read once at accept (the
 * kernel snapshots them at connect()), never from anything the peer says. Every Get is authorised
 * against that uid and those groups.
 *
 * The connection is non-blocking and never stalls anybody else: bytes are read as they come into a
 * bounded VarlinkReader, calls are handled in order one at a time (a Get waiting for Vault blocks
 * only its own connection), replies are queued and written when the socket takes them. Limits: the
 * message size cap, a deadline from the first byte of a message to its last (exceeding it closes
 * the connection), and requests in flight per uid (TooManyRequests). A connection with no partial
 * message is idle and is never timed out.
 *
 * Replies may carry secrets: the output buffer is wiped when freed.
 */

#include <assert.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "broker/config.h"
#include "broker/lease.h"
#include "broker/log.h"
#include "broker/manager.h"
#include "broker/peer.h"
#include "broker/policy.h"
#include "broker/session.h"
#include "broker/userlogin.h"
#include "broker/vault.h"
#include "broker/varlink-interface.h"
#include "common/list.h"
#include "common/memory-util.h"
#include "common/peercred.h"

#define INTERFACE "io.vlease.Broker"
#define SERVICE "org.varlink.service"
#define OUT_HIGH_WATERMARK ((size_t) 1024U * 1024U)
#define OUT_MAX ((size_t) 16U * 1024U * 1024U)

typedef enum MethodFlags {
        METHOD_ROOT_ONLY = 1 << 0,
        METHOD_NOT_IMPLEMENTED = 1 << 1,
} MethodFlags;

/* Return: 0 answered, 1 pending (the reply comes later), negative errno: close the connection. */
typedef int (*MethodHandler)(Peer *p, json_object *params);

typedef struct Method {
        const char *name;
        MethodHandler handler;
        MethodFlags flags;
        const char *const *params;
} Method;

static int peer_update_io(Peer *p);
static void peer_kick(Peer *p);
static void peer_to_batch(Peer *p);

/* ---- output ---- */

/* Appends a copy of @msg to the output buffer (which is wiped whenever it is freed or moved). */
static int peer_queue_copy(Peer *p, const char *msg, size_t len) {
        if (p->oneway)
                return 0;
        if (p->out_size + len > OUT_MAX)
                return -ENOBUFS;
        if (p->out_size + len > p->out_allocated) {
                size_t n = MAX(p->out_allocated * 2, p->out_size + len);
                char *b = malloc(n);

                if (!b)
                        return -ENOMEM;
                if (p->out) {
                        memcpy(b, p->out, p->out_size);
                        explicit_bzero_safe(p->out, p->out_allocated);
                        free(p->out);
                }
                p->out = b;
                p->out_allocated = n;
        }
        memcpy(p->out + p->out_size, msg, len);
        p->out_size += len;
        return 0;
}

/* Queues @msg and wipes and frees it. */
static int peer_queue(Peer *p, char *msg, size_t len) {
        int r;

        r = peer_queue_copy(p, msg, len);
        explicit_bzero_safe(msg, len);
        free(msg);
        return r;
}

static int peer_reply(Peer *p, json_object *params) {
        char *msg;
        size_t len;
        int r;

        r = varlink_reply(params, &msg, &len);
        if (r < 0)
                return r;
        return peer_queue(p, msg, len);
}

static int peer_error(Peer *p, const char *error, json_object *params) {
        char *msg;
        size_t len;
        int r;

        r = varlink_error(error, params, &msg, &len);
        if (r < 0)
                return r;
        return peer_queue(p, msg, len);
}

static int peer_error_string(Peer *p, const char *error, const char *key, const char *value) {
        json_object *o;
        int r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (key)
                (void) json_object_object_add(o, key, json_object_new_string(value));
        r = peer_error(p, error, o);
        json_object_put(o);
        return r;
}

static int peer_invalid_parameter(Peer *p, const char *name) {
        return peer_error_string(p, SERVICE ".InvalidParameter", "parameter", name);
}

/* ---- who goes first ----
 *
 * sd-event serves ready sources of one priority in the order they became ready, a batch ready at once
 * in one go. A burst of first requests (100 logins at once), or the 100 answers of one Vault read
 * written together, is such a batch, and a cached Get arriving just after it waited for all of it
 * (about 1 ms, measured in tools/bench figure 3). So a connection waits at PEER_PRIORITY_NEW, below
 * the connections already answered, until its first reply is written; the listening socket too, and
 * Vault's answers (32 reads finishing together are 32 dispatches of 50-200 µs: manager.c sets it).
 * So that established clients keeping the loop busy cannot starve newcomers (a login, a unit
 * starting) or Vault's answers (renewals), after PEER_FAIR_STREAK dispatches of answered connections
 * in a row every newcomer, the listening socket for its next accept and Vault's answers for their
 * next dispatch are raised to the normal priority, where all are served in arrival order. Raising is
 * once per connection (and once per Vault dispatch): the cost stays O(1) per dispatch. */

static void newcomer_unlink(Peer *p) {
        Manager *m = p->manager;

        if (p->newcomer_prev)
                p->newcomer_prev->newcomer_next = p->newcomer_next;
        else if (m->newcomers == p)
                m->newcomers = p->newcomer_next;
        if (p->newcomer_next)
                p->newcomer_next->newcomer_prev = p->newcomer_prev;
        p->newcomer_prev = p->newcomer_next = NULL;
}

static void peer_raise(Peer *p) {
        if (p->answered)
                return;
        p->answered = true;
        newcomer_unlink(p);
        (void) sd_event_source_set_priority(p->io_source, SD_EVENT_PRIORITY_NORMAL);
        (void) sd_event_source_set_priority(p->defer_source, SD_EVENT_PRIORITY_NORMAL);
}

/* At the start of each dispatch of @p. */
static void peer_dispatched(Peer *p) {
        Manager *m = p->manager;

        if (!p->answered) {
                m->fair_streak = 0;
                return;
        }
        if (++m->fair_streak < PEER_FAIR_STREAK)
                return;
        m->fair_streak = 0;
        while (m->newcomers)
                peer_raise(m->newcomers);
        vault_client_raise(m->vault);
        if (m->varlink_source && !m->listen_raised &&
            sd_event_source_set_priority(m->varlink_source, SD_EVENT_PRIORITY_NORMAL) >= 0)
                m->listen_raised = true;
}

/**
 * peer_listen_dispatched() - the listening socket is being dispatched: back to PEER_PRIORITY_NEW
 */
void peer_listen_dispatched(Manager *m) {
        m->fair_streak = 0;
        if (m->listen_raised &&
            sd_event_source_set_priority(m->varlink_source, PEER_PRIORITY_NEW) >= 0)
                m->listen_raised = false;
}

static int peer_flush(Peer *p) {
        while (p->out_size > 0) {
                ssize_t n = send(p->fd, p->out, p->out_size, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return negative_errno();
                }
                explicit_bzero_safe(p->out, (size_t) n);
                memmove(p->out, p->out + n, p->out_size - (size_t) n);
                p->out_size -= (size_t) n;
                peer_raise(p);          /* (a first reply) is out */
        }
        return 0;
}

/* ---- the request deadline ---- */

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        Peer *p = userdata;

        log_warning("Peer uid=%u pid=%u did not complete a request within %llus: closing the connection.",
                    (unsigned) p->ucred.uid, (unsigned) p->ucred.pid,
                    (unsigned long long) (p->manager->config->broker.request_timeout_usec / USEC_PER_SEC));
        peer_free(p);
        return 0;
}

/* Armed while a message is partly read: the client has request_timeout_sec to finish sending it. A call
 * waiting for Vault is not the client's doing and is bounded by the Vault client's own timeout; idle
 * connections (a PAM session's, say) never time out. */
static void peer_update_deadline(Peer *p, bool restart) {
        usec_t timeout = p->manager->config->broker.request_timeout_usec;
        bool active = !p->busy && varlink_reader_pending(&p->reader) > 0;
        int r;

        if (!active || timeout == 0) {
                if (p->deadline_armed)
                        (void) sd_event_source_set_enabled(p->deadline_source, SD_EVENT_OFF);
                p->deadline_armed = false;
                return;
        }
        if (p->deadline_armed && !restart)
                return;

        if (!p->deadline_source) {
                r = sd_event_add_time_relative(p->manager->event, &p->deadline_source, CLOCK_MONOTONIC, timeout,
                                               0, on_deadline, p);
                if (r < 0) {
                        log_error_errno(r, "Failed to add a request deadline: %m");
                        return;
                }
                (void) sd_event_source_set_description(p->deadline_source, "peer-deadline");
        } else {
                (void) sd_event_source_set_time_relative(p->deadline_source, timeout);
                (void) sd_event_source_set_enabled(p->deadline_source, SD_EVENT_ONESHOT);
        }
        p->deadline_armed = true;
}

/* ---- call completion ---- */

static void peer_call_finished(Peer *p) {
        UidAccount *a;

        if (p->counted) {
                a = manager_account(p->manager, p->ucred.uid);
                if (a && a->n_requests > 0)
                        a->n_requests--;
                p->counted = false;
        }
        p->busy = false;
        p->oneway = false;
        p->waiter = NULL;
        peer_update_deadline(p, true);
}

static void peer_answered(Peer *p, int r) {
        if (r < 0)
                log_warning_errno(r, "Failed to queue a reply to uid=%u: %m", (unsigned) p->ucred.uid);
        peer_call_finished(p);
        /* Answered from inside peer_process(): it goes on by itself, no extra loop pass needed. */
        if (!p->in_process)
                peer_kick(p);
}

static void on_lease_done(const char *error, json_object *params, void *userdata) {
        Peer *p = userdata;

        p->waiter = NULL;
        peer_answered(p, error ? peer_error(p, error, params) : peer_reply(p, params));
}

static void on_lease_wire(const char *msg, size_t len, void *userdata) {
        Peer *p = userdata;

        p->waiter = NULL;
        peer_answered(p, peer_queue_copy(p, msg, len));
}

/* ---- methods ---- */

static const char *const params_none[] = { NULL };
static const char *const params_name[] = { "name", NULL };
static const char *const params_interface[] = { "interface", NULL };
static const char *const params_open_session[] = { "user", "service", "tty", "rhost", "wait_usec", NULL };
static const char *const params_close_session[] = { "session", NULL };
static const char *const params_login[] = { "user", "password", NULL };

static int lookup_credential(Peer *p, json_object *params, const CredentialConfig **ret) {
        const CredentialConfig *c;
        const char *name;
        int r;

        r = varlink_param_string(params, "name", true, &name);
        if (r < 0)
                return peer_invalid_parameter(p, "name") ?: 0;

        c = config_find_credential(p->manager->config, name);
        if (!c) {
                log_info("Peer uid=%u pid=%u asked for unknown credential '%.64s'.", (unsigned) p->ucred.uid,
                         (unsigned) p->ucred.pid, credential_name_is_valid(name) ? name : "(invalid)");
                r = peer_error_string(p, INTERFACE ".NoSuchCredential", "name", name);
                return r < 0 ? r : 0;
        }
        if (!policy_allows(c, p->ucred.uid, p->gids, p->n_gids) &&
            !(manager_policy_refresh(p->manager, c) && policy_allows(c, p->ucred.uid, p->gids, p->n_gids))) {
                log_warning("Permission denied: peer uid=%u pid=%u may not get credential '%s'.",
                            (unsigned) p->ucred.uid, (unsigned) p->ucred.pid, c->name);
                r = peer_error(p, INTERFACE ".PermissionDenied", NULL);
                return r < 0 ? r : 0;
        }
        *ret = c;
        return 1;
}

/* Queues the cached answer of @c, already authorised for the peer: 1, or 0 when it is not cached. */
static int peer_queue_cached(Peer *p, const CredentialConfig *c) {
        const char *msg;
        size_t len;

        if (lease_get_cached(p->manager, p->ucred.uid, c, &msg, &len) <= 0)
                return 0;
        return peer_queue_copy(p, msg, len) ?: 1;
}

static int method_get_or_release(Peer *p, json_object *params, bool release) {
        const CredentialConfig *c = NULL;
        bool may_start;
        unsigned limit;
        UidAccount *a;
        int r;

        r = lookup_credential(p, params, &c);
        if (r <= 0)
                return r;

        a = manager_account(p->manager, p->ucred.uid);
        if (!a)
                return -ENOMEM;
        limit = p->ucred.uid == 0 ? p->manager->config->broker.max_connections_root
                                  : p->manager->config->broker.max_requests_per_uid;
        may_start = a->n_requests < limit;

        log_debug("Peer uid=%u pid=%u: %s '%s'.", (unsigned) p->ucred.uid, (unsigned) p->ucred.pid,
                  release ? "Release" : "Get", c->name);

        if (!release) {
                /* A cached answer: copy its prebuilt bytes, costs Vault nothing. */
                r = peer_queue_cached(p, c);
                if (r != 0)
                        return MIN(r, 0);
        }

        /* Counted against the uid: calls that make a Vault request. Joining a read already in
         * flight for the same key, or a cached answer, costs Vault nothing. */
        p->busy = true;
        if (release) {
                if (!may_start)
                        r = -EBUSY;
                else
                        r = lease_release(p->manager, p->ucred.uid, c, on_lease_done, p, &p->waiter);
        } else if (c->identity == CREDENTIAL_IDENTITY_USER)
                r = userlogin_lease_get(p->manager, p->ucred.uid, c, may_start, on_lease_done, p, &p->waiter);
        else
                r = lease_get(p->manager, p->ucred.uid, c, may_start, on_lease_done, p, &p->waiter);
        if (r == -EBUSY) {
                p->busy = false;
                log_warning("Peer uid=%u pid=%u has too many requests in flight.", (unsigned) p->ucred.uid,
                            (unsigned) p->ucred.pid);
                r = peer_error(p, INTERFACE ".TooManyRequests", NULL);
                return r < 0 ? r : 0;
        }
        if (r < 0) {
                peer_call_finished(p);
                log_error_errno(r, "Failed to start %s of '%s': %m", release ? "Release" : "Get", c->name);
                r = peer_error_string(p, INTERFACE ".VaultUnavailable", "reason", "internal error");
                return r < 0 ? r : 0;
        }
        if (!p->busy)
                return 0;       /* answered already */
        if (!release && c->identity != CREDENTIAL_IDENTITY_USER)
                lease_waiter_set_wire(p->waiter, on_lease_wire);
        if (r == 0) {
                /* this call started a Vault request */
                a = manager_account(p->manager, p->ucred.uid);
                if (a)
                        a->n_requests++;
                p->counted = !!a;
        }
        return 1;
}

static int method_get(Peer *p, json_object *params) {
        return method_get_or_release(p, params, false);
}

static int method_release(Peer *p, json_object *params) {
        return method_get_or_release(p, params, true);
}

/* Session and login calls answer through on_lease_done(), now or later. */
static int peer_call_async(Peer *p, json_object *params,
                           int (*f)(Manager *m, Peer *p, json_object *params, LeaseDoneFunc cb, void *userdata)) {
        int r;

        p->busy = true;
        r = f(p->manager, p, params, on_lease_done, p);
        if (r < 0) {
                peer_call_finished(p);
                return r;
        }
        return p->busy ? 1 : 0;
}

static int method_open_session(Peer *p, json_object *params) {
        return peer_call_async(p, params, session_open);
}

static int method_close_session(Peer *p, json_object *params) {
        return peer_call_async(p, params, session_close);
}

static int method_login(Peer *p, json_object *params) {
        return peer_call_async(p, params, userlogin_login);
}

static int method_list(Peer *p, json_object *params) {
        const Config *cfg = p->manager->config;
        json_object *reply, *allowed, *held;
        int r;

        reply = json_object_new_object();
        allowed = json_object_new_array();
        held = json_object_new_array();
        if (!reply || !allowed || !held) {
                json_object_put(reply);
                json_object_put(allowed);
                json_object_put(held);
                return -ENOMEM;
        }
        (void) json_object_object_add(reply, "allowed", allowed);
        (void) json_object_object_add(reply, "held", held);

        for (size_t i = 0; i < cfg->n_credentials; i++)
                if (policy_allows(&cfg->credentials[i], p->ucred.uid, p->gids, p->n_gids))
                        (void) json_object_array_add(allowed, json_object_new_string(cfg->credentials[i].name));

        r = lease_append_held(p->manager, p->ucred.uid == 0, p->ucred.uid, held);
        if (r >= 0)
                r = peer_reply(p, reply);
        json_object_put(reply);
        return r;
}

static int method_status(Peer *p, json_object *params) {
        json_object *reply, *vault, *held;
        VaultStatus st = {};
        int r;

        vault_client_get_status(p->manager->vault, &st);

        reply = json_object_new_object();
        vault = json_object_new_object();
        held = json_object_new_array();
        if (!reply || !vault || !held) {
                json_object_put(reply);
                json_object_put(vault);
                json_object_put(held);
                return -ENOMEM;
        }
        (void) json_object_object_add(reply, "vault", vault);
        (void) json_object_object_add(reply, "held", held);
        (void) json_object_object_add(reply, "sessions",
                                      json_object_new_int64(session_count(p->manager, p->ucred.uid == 0, p->ucred.uid)));

        (void) json_object_object_add(vault, "address", json_object_new_string(st.address ?: ""));
        (void) json_object_object_add(vault, "reachable", json_object_new_boolean(st.reachable));
        if (st.sealed >= 0)
                (void) json_object_object_add(vault, "sealed", json_object_new_boolean(st.sealed > 0));
        if (st.token_expires_usec > 0 && st.token_expires_usec != USEC_INFINITY)
                (void) json_object_object_add(vault, "token_expires_usec",
                                              json_object_new_int64((int64_t) st.token_expires_usec));
        if (st.last_error)
                (void) json_object_object_add(vault, "last_error", json_object_new_string(st.last_error));

        r = lease_append_held(p->manager, p->ucred.uid == 0, p->ucred.uid, held);
        if (r >= 0)
                r = peer_reply(p, reply);
        json_object_put(reply);
        return r;
}

static int method_get_info(Peer *p, json_object *params) {
        json_object *reply, *ifaces;
        int r;

        reply = json_object_new_object();
        ifaces = json_object_new_array();
        if (!reply || !ifaces) {
                json_object_put(reply);
                json_object_put(ifaces);
                return -ENOMEM;
        }
        (void) json_object_object_add(reply, "vendor", json_object_new_string("vlease"));
        (void) json_object_object_add(reply, "product", json_object_new_string("vleased"));
        (void) json_object_object_add(reply, "version", json_object_new_string(VLEASE_VERSION));
        (void) json_object_object_add(reply, "url", json_object_new_string("https://github.com/vlease/vlease"));
        (void) json_object_array_add(ifaces, json_object_new_string(SERVICE));
        (void) json_object_array_add(ifaces, json_object_new_string(INTERFACE));
        (void) json_object_object_add(reply, "interfaces", ifaces);

        r = peer_reply(p, reply);
        json_object_put(reply);
        return r;
}

static const char service_interface_text[] =
        "# The Varlink Service Interface is provided by every varlink service. It\n"
        "# describes the service and the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Get a list of all the interfaces a service provides and information\n"
        "# about the implementation.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Get the description of an interface that is implemented by this service.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The requested interface was not found.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The requested method was not found\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the requested method, but the service does not\n"
        "# implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# One of the passed parameters is invalid.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# Client is denied access\n"
        "error PermissionDenied ()\n"
        "\n"
        "# Method is expected to be called with 'more' set to true, but wasn't\n"
        "error ExpectedMore ()\n";

static int method_get_interface_description(Peer *p, json_object *params) {
        const char *name, *text;
        json_object *reply;
        int r;

        r = varlink_param_string(params, "interface", true, &name);
        if (r < 0)
                return peer_invalid_parameter(p, "interface");

        if (strcmp(name, INTERFACE) == 0)
                text = vlease_broker_interface_text;
        else if (strcmp(name, SERVICE) == 0)
                text = service_interface_text;
        else
                return peer_error_string(p, SERVICE ".InterfaceNotFound", "interface", name);

        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        (void) json_object_object_add(reply, "description", json_object_new_string(text));
        r = peer_reply(p, reply);
        json_object_put(reply);
        return r;
}

static const Method methods[] = {
        { INTERFACE ".Get",          method_get,     0,                       params_name },
        { INTERFACE ".List",         method_list,    0,                       params_none },
        { INTERFACE ".Release",      method_release, 0,                       params_name },
        { INTERFACE ".Status",       method_status,  0,                       params_none },
        { INTERFACE ".OpenSession",  method_open_session,  METHOD_ROOT_ONLY, params_open_session },
        { INTERFACE ".CloseSession", method_close_session, 0,                params_close_session },
        { INTERFACE ".Login",        method_login,         METHOD_ROOT_ONLY, params_login },
        { SERVICE ".GetInfo",        method_get_info, 0,                      params_none },
        { SERVICE ".GetInterfaceDescription", method_get_interface_description, 0, params_interface },
};

static int peer_dispatch(Peer *p, const VarlinkCall *call) {
        const char *bad = NULL, *dot;
        const Method *m = NULL;

        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(methods[i].name, call->method) == 0) {
                        m = &methods[i];
                        break;
                }

        p->oneway = call->oneway;

        if (!m) {
                dot = strrchr(call->method, '.');
                if (dot && (size_t) (dot - call->method) == strlen(INTERFACE) &&
                    strncmp(call->method, INTERFACE, strlen(INTERFACE)) == 0)
                        return peer_error_string(p, SERVICE ".MethodNotFound", "method", call->method);
                if (dot && (size_t) (dot - call->method) == strlen(SERVICE) &&
                    strncmp(call->method, SERVICE, strlen(SERVICE)) == 0)
                        return peer_error_string(p, SERVICE ".MethodNotFound", "method", call->method);
                return peer_error_string(p, SERVICE ".InterfaceNotFound", "interface",
                                         dot ? strndupa(call->method, dot - call->method) : call->method);
        }

        if ((m->flags & METHOD_ROOT_ONLY) && p->ucred.uid != 0) {
                log_warning("Permission denied: peer uid=%u pid=%u called %s.", (unsigned) p->ucred.uid,
                            (unsigned) p->ucred.pid, m->name);
                return peer_error(p, INTERFACE ".PermissionDenied", NULL);
        }
        if (m->flags & METHOD_NOT_IMPLEMENTED)
                return peer_error_string(p, SERVICE ".MethodNotImplemented", "method", m->name);
        if (call->upgrade)
                return peer_invalid_parameter(p, "upgrade");
        if (varlink_check_unknown(call->parameters, m->params, &bad) < 0)
                return peer_invalid_parameter(p, bad ?: "parameters");

        return m->handler(p, call->parameters);
}

/* A Get of a credential @name the peer may have, answered from the cache; 0 when it is not that
 * simple (unknown, denied, not cached...): then the full path runs and says why. */
static int peer_get_cached(Peer *p, const char *name) {
        const CredentialConfig *c;

        c = config_find_credential(p->manager->config, name);
        if (!c || !policy_allows(c, p->ucred.uid, p->gids, p->n_gids))
                return 0;
        return peer_queue_cached(p, c);
}

/* Handles complete buffered calls, one at a time, until one goes asynchronous. */
static int peer_process_calls(Peer *p) {
        int r;

        while (!p->busy && p->out_size < OUT_HIGH_WATERMARK) {
                VarlinkCall call = {};
                char name[256];
                const char *msg;
                size_t len;

                r = varlink_reader_next(&p->reader, &msg, &len);
                if (r == -E2BIG) {
                        log_warning("Peer uid=%u pid=%u sent a message over %zu bytes: closing the connection.",
                                    (unsigned) p->ucred.uid, (unsigned) p->ucred.pid, p->reader.max);
                        return r;
                }
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                /* The common case: a Get in the bytes our client writes, of a cached credential. */
                if (varlink_match_name_call(msg, len, INTERFACE ".Get", name, sizeof(name))) {
                        r = peer_get_cached(p, name);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                peer_update_deadline(p, true);
                                continue;
                        }
                }

                r = varlink_parse_call(msg, len, &call);
                if (r < 0) {
                        log_warning("Peer uid=%u pid=%u sent a malformed message: closing the connection.",
                                    (unsigned) p->ucred.uid, (unsigned) p->ucred.pid);
                        return r;
                }

                r = peer_dispatch(p, &call);
                varlink_call_done(&call);
                if (r < 0)
                        return r;
                if (!p->busy) {
                        p->oneway = false;
                        peer_update_deadline(p, true);
                }
        }
        peer_update_deadline(p, false);
        return 0;
}

static int peer_process(Peer *p) {
        int r;

        p->in_process = true;
        r = peer_process_calls(p);
        p->in_process = false;
        return r;
}

/* Runs everything that can run now, then decides what to wait for. May free @p: then false. */
static bool peer_run(Peer *p) {
        int r;

        r = peer_process(p);
        if (r >= 0)
                r = peer_flush(p);
        if (r < 0) {
                peer_free(p);
                return false;
        }

        /* The end of the stream with everything answered: processing ran until !busy with nothing
         * queued, so all that can be left in the reader is a tail without NUL. */
        if (p->eof && !p->busy && p->out_size == 0) {
                peer_free(p);
                return false;
        }
        r = peer_update_io(p);
        if (r < 0) {
                log_warning_errno(r, "Failed to watch a connection of uid=%u, closing it: %m",
                                  (unsigned) p->ucred.uid);
                peer_free(p);
                return false;
        }
        return true;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int on_defer(sd_event_source *s, void *userdata) {
        Peer *p = userdata;

        peer_dispatched(p);

        /* bytes left in the socket from the last edge: no new edge will come for them */
        if (p->read_more && !p->eof)
                return on_io(s, p->fd, EPOLLIN, p);
        (void) peer_run(p);
        return 0;
}

static void peer_kick(Peer *p) {
        (void) sd_event_source_set_enabled(p->defer_source, SD_EVENT_ONESHOT);
}

/* What epoll reported for @p: read what came, then run. May free @p: then false. */
static bool peer_on_events(Peer *p, uint32_t revents) {
        if (revents & EPOLLIN) {
                ssize_t n = varlink_reader_read(&p->reader, p->fd);

                /* Edge-triggered: a read that filled the buffer may have left bytes behind, and no new
                 * edge comes for those; peer_update_io() comes back for them. A shorter read took all
                 * there was: anything arriving later raises a new edge. Except the end of the stream:
                 * a FIN that came with the data (shutdown(SHUT_WR) after the last call) raises no edge
                 * of its own, so after EPOLLRDHUP we come back until read() says 0. */
                p->read_more = n > 0 && (p->reader.last_read_full || (revents & EPOLLRDHUP));
                if (n == 0)
                        p->eof = true;
                else if (n == -ENOBUFS) {
                        /* buffer full: the caller must drain it first; process below */
                        p->read_more = true;
                } else if (n < 0 && n != -EAGAIN) {
                        if (n != -ECONNRESET)
                                log_debug_errno((int) n, "Read from uid=%u failed: %m", (unsigned) p->ucred.uid);
                        peer_free(p);
                        return false;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                if (!(revents & EPOLLOUT) || p->out_size == 0)
                        p->eof = true;
        }

        return peer_run(p);
}

/* A connection's own io source, until it comes back after its first reply: then it joins the batch
 * (below), so that a one-shot client (vlease get) never pays for the move. Also the defer source's
 * way back for bytes left in the socket. */
static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;
        bool answered = p->answered;

        if (s == p->io_source)
                peer_dispatched(p);
        if (peer_on_events(p, revents) && answered && !p->in_batch && !p->batch_failed)
                peer_to_batch(p);
        return 0;
}

/* ---- answered connections, in batches ----
 *
 * sd-event dispatches one source per loop iteration, each after an epoll_wait() of its own: with 64
 * busy clients that was a fifth of the CPU of a cached Get (perf, tools/bench figure 1). A connection
 * that comes back after its first reply is therefore moved to an epoll of its own (edge-triggered, as
 * before), itself one io source at the normal priority; each of its dispatches serves up to
 * PEER_BATCH_MAX ready connections in the order they became ready, as the baseline server does.
 * Whatever else is ready (newcomers, the listening socket, Vault's answers, timers) gets its turn
 * between batches, under the same fair-streak guard, counted per connection served. A connection
 * freed during a batch keeps its memory until the batch ends, so that a later entry of the same
 * batch never points at freed memory. */

static void peer_batch_bury(Manager *m) {
        while (m->peer_graveyard) {
                Peer *p = m->peer_graveyard;

                m->peer_graveyard = p->grave_next;
                free(p);
        }
}

static int on_batch(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct epoll_event ev[PEER_BATCH_MAX];
        Manager *m = userdata;
        int n;

        n = epoll_wait(fd, ev, ELEMENTSOF(ev), 0);
        if (n < 0) {
                /* not returned: sd-event would turn the source off for good */
                if (errno != EINTR)
                        log_error_errno(negative_errno(), "epoll_wait() on connections failed: %m");
                return 0;
        }

        m->in_peer_batch = true;
        for (int i = 0; i < n; i++) {
                Peer *p = ev[i].data.ptr;

                if (p->dead)
                        continue;
                peer_dispatched(p);
                (void) peer_on_events(p, ev[i].events);
        }
        m->in_peer_batch = false;
        peer_batch_bury(m);
        return 0;
}

static int peer_batch_fd(Manager *m) {
        int fd, r;

        if (m->peer_epoll_fd >= 0)
                return m->peer_epoll_fd;

        fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = sd_event_add_io(m->event, &m->peer_epoll_source, fd, EPOLLIN, on_batch, m);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        (void) sd_event_source_set_description(m->peer_epoll_source, "peer-batch");
        m->peer_epoll_fd = fd;
        return fd;
}

static int peer_batch_ctl(Peer *p, int op, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = p };

        return epoll_ctl(p->manager->peer_epoll_fd, op, p->fd, &ev) < 0 ? negative_errno() : 0;
}

/* From the connection's own io source (at the normal priority since its first reply) to the batch
 * epoll; if that cannot be had, it stays where it is, served one per dispatch. */
static void peer_to_batch(Peer *p) {
        int r;

        r = peer_batch_fd(p->manager);
        if (r >= 0 && p->io_events != 0)
                r = peer_batch_ctl(p, EPOLL_CTL_ADD, p->io_events);
        if (r < 0) {
                /* not again for this one; said once per process (EMFILE would say it for every one) */
                p->batch_failed = true;
                log_full_errno(p->manager->batch_warned ? LOG_DEBUG : LOG_WARNING, r,
                               "Failed to batch a connection, serving it alone: %m");
                p->manager->batch_warned = true;
                return;
        }
        p->io_source = sd_event_source_disable_unref(p->io_source);
        p->in_batch = true;
}

static int peer_update_io(Peer *p) {
        uint32_t events = 0;
        int r;

        if (!p->eof && p->out_size < OUT_HIGH_WATERMARK &&
            !(p->busy && varlink_reader_pending(&p->reader) >= p->reader.max))
                events |= EPOLLIN | EPOLLRDHUP;
        if (p->out_size > 0)
                events |= EPOLLOUT;

        /* epoll reports EPOLLHUP whatever the mask: with nothing to wait for, turn the source off */
        if (events == 0) {
                if (p->io_events != 0) {
                        if (p->in_batch)
                                (void) peer_batch_ctl(p, EPOLL_CTL_DEL, 0);
                        else
                                (void) sd_event_source_set_enabled(p->io_source, SD_EVENT_OFF);
                }
                p->io_events = 0;
                return 0;
        }

        /* Only when it changes: a MOD costs a syscall, and re-arms the edge, which is all it needs to
         * report what is ready now. Turning the source on again does the same.
         *
         * Bytes may be waiting that no edge will announce (the last read filled the buffer): re-arm
         * the edge for them too, so that they come back through epoll and wait their turn behind
         * every other ready connection and the listening socket. Not from the defer source: sd-event
         * orders a defer source by the loop iteration it was created in, so a connection kept busy
         * by a pipelining client would run again before anything that became ready later, and never
         * let the loop accept another connection.
         *
         * A connection nothing watches would never be served nor closed: a failure is returned. */
        events |= EPOLLET;
        if (events == p->io_events && !((events & EPOLLIN) && p->read_more && !p->busy))
                return 0;
        if (p->in_batch)
                r = peer_batch_ctl(p, p->io_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, events);
        else {
                r = 0;
                if (p->io_events == 0)
                        r = sd_event_source_set_enabled(p->io_source, SD_EVENT_ON);
                if (r >= 0)
                        r = sd_event_source_set_io_events(p->io_source, events);
        }
        if (r < 0)
                return r;
        p->io_events = events;
        return 0;
}

/* SO_PEERGROUPS lists the supplementary groups only; a process whose primary group is the allowed
 * one (setpriv --regid, newgrp) belongs to it as much. */
static int peer_add_primary_gid(Peer *p) {
        gid_t *g;

        for (size_t i = 0; i < p->n_gids; i++)
                if (p->gids[i] == p->ucred.gid)
                        return 0;
        g = reallocarray(p->gids, p->n_gids + 1, sizeof(gid_t));
        if (!g)
                return -ENOMEM;
        g[p->n_gids++] = p->ucred.gid;
        p->gids = g;
        return 0;
}

/**
 * peer_new() - take over an accepted connection
 * @m: the manager
 * @fd: the connection (ownership passes to the peer, also on error)
 * @ret: the peer, or NULL if the connection was closed because of a limit
 *
 * Reads SO_PEERCRED and SO_PEERGROUPS, enforces the per-uid connection limit (over it the
 * connection is closed at once) and starts reading.
 *
 * Return: 0, or a negative errno
 */
int peer_new(Manager *m, int fd, Peer **ret) {
        _cleanup_close_ int cfd = fd;
        UidAccount *a;
        unsigned limit;
        Peer *p;
        int r;

        *ret = NULL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->fd = -1;

        r = getpeercred(cfd, &p->ucred);
        if (r < 0) {
                free(p);
                return log_warning_errno(r, "Failed to read the peer's credentials: %m");
        }
        r = getpeergroups(cfd, &p->gids, &p->n_gids);
        if (r < 0) {
                free(p);
                return log_warning_errno(r, "Failed to read the peer's groups: %m");
        }
        r = peer_add_primary_gid(p);
        if (r < 0) {
                free(p->gids);
                free(p);
                return log_oom();
        }

        a = manager_account(m, p->ucred.uid);
        if (!a) {
                free(p->gids);
                free(p);
                return -ENOMEM;
        }
        limit = p->ucred.uid == 0 ? m->config->broker.max_connections_root : m->config->broker.max_connections_per_uid;
        if (a->n_connections >= limit) {
                log_warning("Peer uid=%u pid=%u is over its %u connections: closing.", (unsigned) p->ucred.uid,
                            (unsigned) p->ucred.pid, limit);
                free(p->gids);
                free(p);
                manager_account_gc(m);
                return 0;
        }

        varlink_reader_init(&p->reader, m->config->broker.max_message_size);
        p->fd = TAKE_FD(cfd);
        a->n_connections++;
        LIST_PREPEND(m->peers, p);
        m->n_peers++;

        r = sd_event_add_io(m->event, &p->io_source, p->fd, EPOLLIN | EPOLLRDHUP | EPOLLET, on_io, p);
        if (r < 0)
                goto fail;
        p->io_events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        (void) sd_event_source_set_description(p->io_source, "peer-io");
        r = sd_event_add_defer(m->event, &p->defer_source, on_defer, p);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(p->defer_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(p->defer_source, "peer-defer");
        (void) sd_event_source_set_priority(p->io_source, PEER_PRIORITY_NEW);
        (void) sd_event_source_set_priority(p->defer_source, PEER_PRIORITY_NEW);
        p->newcomer_next = m->newcomers;
        if (m->newcomers)
                m->newcomers->newcomer_prev = p;
        m->newcomers = p;

        log_debug("Connection from uid=%u pid=%u.", (unsigned) p->ucred.uid, (unsigned) p->ucred.pid);
        manager_update_status(m);
        *ret = p;
        return 0;

fail:
        peer_free(p);
        return log_error_errno(r, "Failed to watch a connection: %m");
}

/**
 * peer_free() - close the connection, cancel its pending call, wipe its buffers
 *
 * Return: NULL
 */
Peer *peer_free(Peer *p) {
        Manager *m;
        UidAccount *a;

        if (!p)
                return NULL;
        m = p->manager;

        lease_waiter_cancel(p->waiter);
        p->waiter = NULL;
        session_peer_gone(m, p);        /* sessions held by this connection end with it */
        if (p->counted) {
                a = manager_account(m, p->ucred.uid);
                if (a && a->n_requests > 0)
                        a->n_requests--;
        }
        if (p->fd >= 0) {
                a = manager_account(m, p->ucred.uid);
                if (a && a->n_connections > 0)
                        a->n_connections--;
                LIST_REMOVE(m->peers, p);
                m->n_peers--;
        }
        if (!p->answered)
                newcomer_unlink(p);

        if (p->in_batch && p->io_events != 0)
                (void) peer_batch_ctl(p, EPOLL_CTL_DEL, 0);
        sd_event_source_disable_unref(p->io_source);
        sd_event_source_disable_unref(p->defer_source);
        sd_event_source_disable_unref(p->deadline_source);
        safe_close(p->fd);
        if (p->reader.buf)
                explicit_bzero_safe(p->reader.buf, p->reader.allocated);
        varlink_reader_done(&p->reader);
        if (p->out) {
                explicit_bzero_safe(p->out, p->out_allocated);
                free(p->out);
        }
        free(p->gids);
        if (m->in_peer_batch) {
                /* a later entry of the batch may still name it */
                *p = (Peer) { .dead = true, .grave_next = m->peer_graveyard };
                m->peer_graveyard = p;
        } else
                free(p);

        manager_account_gc(m);
        manager_update_status(m);
        manager_check_stopped(m);
        return NULL;
}
