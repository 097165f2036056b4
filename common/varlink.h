/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Varlink framing and a total decoder (see reference/varlink.md): every message is one JSON object
 * followed by a NUL byte. The reader keeps a bounded per-connection buffer; the parsers accept exactly
 * one well-formed object and nothing else. Used by the broker (server side), the client and the PAM
 * module (client side). No logging here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"

/* json-c's own typedef, repeated so that this header does not pull in json-c (C11 allows it). */
typedef struct json_object json_object;

/* Default cap on one message, its NUL included. */
#define VARLINK_MESSAGE_MAX ((size_t) 64U * 1024U)
/* Cap for replies read by clients (a root List may name many leases). */
#define VARLINK_REPLY_MAX ((size_t) 16U * 1024U * 1024U)

typedef struct VarlinkReader {
        char *buf;
        size_t allocated;
        size_t start;           /* first byte not yet handed out */
        size_t end;             /* end of buffered data */
        size_t scanned;         /* bytes from start already known to hold no NUL */
        size_t max;             /* hard cap on one message, NUL included */
        bool last_read_full;    /* the last varlink_reader_read() filled all the room it had */
} VarlinkReader;

void varlink_reader_init(VarlinkReader *r, size_t max);
void varlink_reader_done(VarlinkReader *r);
ssize_t varlink_reader_feed(VarlinkReader *r, const void *data, size_t len);
ssize_t varlink_reader_read(VarlinkReader *r, int fd);
int varlink_reader_next(VarlinkReader *r, const char **ret_msg, size_t *ret_len);
size_t varlink_reader_pending(const VarlinkReader *r);

typedef struct VarlinkCall {
        char *method;
        json_object *parameters;        /* never NULL after a successful parse */
        bool oneway;
        bool more;
        bool upgrade;
} VarlinkCall;

int varlink_parse_call(const char *msg, size_t len, VarlinkCall *ret);
bool varlink_match_name_call(const char *msg, size_t len, const char *method, char *name_buf, size_t name_size);
void varlink_call_done(VarlinkCall *c);

typedef struct VarlinkReply {
        char *error;                    /* NULL for a successful reply */
        json_object *parameters;        /* never NULL after a successful parse */
        bool continues;
} VarlinkReply;

int varlink_parse_reply(const char *msg, size_t len, VarlinkReply *ret);
void varlink_reply_done(VarlinkReply *r);

int varlink_build_call(const char *method, json_object *params, bool oneway, char **ret_msg, size_t *ret_len);
int varlink_reply(json_object *params, char **ret_msg, size_t *ret_len);
int varlink_error(const char *name, json_object *params, char **ret_msg, size_t *ret_len);
int varlink_error_invalid_parameter(const char *parameter, char **ret_msg, size_t *ret_len);

int varlink_param_string(json_object *params, const char *name, bool required, const char **ret);
int varlink_param_int64(json_object *params, const char *name, bool required, int64_t *ret);
int varlink_param_bool(json_object *params, const char *name, bool required, bool *ret);
int varlink_param_object(json_object *params, const char *name, bool required, json_object **ret);
int varlink_param_array(json_object *params, const char *name, bool required, json_object **ret);
int varlink_check_unknown(json_object *params, const char * const *allowed, const char **ret_bad);

bool varlink_method_name_is_valid(const char *s);
bool varlink_error_name_is_valid(const char *s);
