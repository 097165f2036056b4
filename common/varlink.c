/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Varlink framing and decoding (reference/varlink.md). Everything here parses untrusted input from
 * other local users, so the decoders are total: a message is exactly one JSON object before its NUL,
 * valid UTF-8, without the \u0000 escape, without non-finite numbers, with only the header keys the
 * spec knows (plus reverse-domain extension keys, ignored). Anything else is -EBADMSG and the caller
 * closes the connection. Buffers that held messages are wiped, because replies carry secrets.
 */

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/memory-util.h"
#include "common/varlink.h"

static inline void json_tokener_freep(json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

/**
 * varlink_reader_init() - set up an empty reader
 * @r: the reader
 * @max: cap on one message, its NUL included; 0 selects VARLINK_MESSAGE_MAX
 */
void varlink_reader_init(VarlinkReader *r, size_t max) {
        *r = (VarlinkReader) {
                .max = max > 0 ? max : VARLINK_MESSAGE_MAX,
        };
}

/**
 * varlink_reader_done() - wipe and free the reader's buffer
 * @r: the reader; it may be initialised again afterwards
 */
void varlink_reader_done(VarlinkReader *r) {
        if (r->buf) {
                explicit_bzero_safe(r->buf, r->allocated);
                free(r->buf);
        }
        *r = (VarlinkReader) { .max = r->max };
}

/* Drops consumed bytes and grows the buffer (up to the cap) until @want bytes are free. Returns the
 * free space, which may be less than @want at the cap. */
static ssize_t reader_make_room(VarlinkReader *r, size_t want) {
        if (r->start > 0) {
                size_t n = r->end - r->start;

                memmove(r->buf, r->buf + r->start, n);
                explicit_bzero_safe(r->buf + n, r->end - n);
                r->end = n;
                r->start = 0;
        }

        if (r->allocated - r->end < want && r->allocated < r->max) {
                size_t a = MAX(r->allocated, MIN(r->max, (size_t) 4096));
                char *b;

                while (a - r->end < want && a < r->max)
                        a = MIN(a * 2, r->max);

                b = malloc(a);
                if (!b)
                        return -ENOMEM;
                if (r->buf) {
                        memcpy(b, r->buf, r->end);
                        explicit_bzero_safe(r->buf, r->allocated);
                        free(r->buf);
                }
                r->buf = b;
                r->allocated = a;
        }

        return (ssize_t) (r->allocated - r->end);
}

/**
 * varlink_reader_feed() - append received bytes to the reader
 * @r: the reader
 * @data: bytes
 * @len: their number
 *
 * The buffer never holds more than the cap, so this may take only part of @data: the caller takes
 * the complete messages out with varlink_reader_next() and feeds the rest again. When 0 bytes are
 * taken, varlink_reader_next() reports a message or -E2BIG.
 *
 * Return: the number of bytes taken, or -ENOMEM
 */
ssize_t varlink_reader_feed(VarlinkReader *r, const void *data, size_t len) {
        ssize_t room;
        size_t n;

        if (len == 0)
                return 0;

        room = reader_make_room(r, len);
        if (room < 0)
                return room;

        n = MIN(len, (size_t) room);
        if (n > 0)
                memcpy(r->buf + r->end, data, n);
        r->end += n;
        return (ssize_t) n;
}

/**
 * varlink_reader_read() - one read() from a socket into the reader
 * @r: the reader
 * @fd: the socket, usually non-blocking
 *
 * Return: bytes read; 0 at EOF; -EAGAIN; -ENOBUFS when the buffer is full (call varlink_reader_next()
 * first, which then returns a message or -E2BIG); another negative errno
 */
ssize_t varlink_reader_read(VarlinkReader *r, int fd) {
        ssize_t room, n;

        /* Small steps: most calls are a few dozen bytes, and a buffer sized for the largest would cost
         * every connection 64 KiB (1,600 connections of a population: 100 MiB of RSS). A read that
         * fills the room sets last_read_full, and the next read grows the buffer. */
        room = reader_make_room(r, 4096);
        if (room < 0)
                return room;
        if (room == 0)
                return -ENOBUFS;

        n = read(fd, r->buf + r->end, (size_t) room);
        r->last_read_full = n < 0 && errno == EINTR;    /* interrupted: try again, it may hold more */
        if (n < 0)
                return errno == EINTR ? -EAGAIN : negative_errno();
        r->end += (size_t) n;
        r->last_read_full = n == room;
        return n;
}

/**
 * varlink_reader_next() - take the next complete message out of the reader
 * @r: the reader
 * @ret_msg: the message without its NUL; it is followed by a NUL, so it can be used as a C string. Valid
 *      until the next feed or read.
 * @ret_len: its length, the NUL not counted
 *
 * Return: 1 for a message, 0 when more bytes are needed, -E2BIG when the buffered bytes reach the cap
 * without a NUL (close the connection)
 */
int varlink_reader_next(VarlinkReader *r, const char **ret_msg, size_t *ret_len) {
        const char *nul;
        size_t avail = r->end - r->start;
        size_t len;

        if (r->scanned < avail) {
                nul = memchr(r->buf + r->start + r->scanned, 0, avail - r->scanned);
                if (!nul) {
                        r->scanned = avail;
                        if (avail >= r->max)
                                return -E2BIG;
                        return 0;
                }
        } else {
                if (avail >= r->max)
                        return -E2BIG;
                return 0;
        }

        len = (size_t) (nul - (r->buf + r->start));
        if (len + 1 > r->max)
                return -E2BIG;

        *ret_msg = r->buf + r->start;
        *ret_len = len;
        r->start += len + 1;
        r->scanned = 0;
        return 1;
}

/**
 * varlink_reader_pending() - bytes buffered but not yet handed out (a partial message, or messages
 * varlink_reader_next() has not returned yet)
 */
size_t varlink_reader_pending(const VarlinkReader *r) {
        return r->end - r->start;
}

static int hex4(const char *p, size_t n) {
        int v = 0;

        if (n < 4)
                return -1;
        for (size_t i = 0; i < 4; i++) {
                char c = p[i];

                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= c - '0';
                else if (c >= 'a' && c <= 'f')
                        v |= c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        v |= c - 'A' + 10;
                else
                        return -1;
        }
        return v;
}

/* A lexical pre-check of what json-c lets through: the escape \u0000 (json-c decodes it into an
 * embedded NUL, cutting keys short), lone surrogate escapes (json-c turns them into U+FFFD), and raw control characters inside strings (JSON forbids them,
 * json-c takes them even when strict; systemd also refuses 0x7f). */
static bool lexically_valid(const char *msg, size_t len) {
        bool in_string = false;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) msg[i];

                if (!in_string) {
                        if (c == '"')
                                in_string = true;
                        continue;
                }
                if (c < 0x20 || c == 0x7f)
                        return false;
                if (c == '"')
                        in_string = false;
                else if (c == '\\') {
                        if (i + 1 >= len)
                                return false;
                        if (msg[i + 1] == 'u') {
                                int u = hex4(msg + i + 2, len - i - 2);

                                if (u <= 0)     /* \u0000, or not four hex digits */
                                        return false;
                                if (u >= 0xdc00 && u <= 0xdfff)
                                        return false;   /* low surrogate without a high one */
                                if (u >= 0xd800 && u <= 0xdbff) {
                                        int l;

                                        if (len - i < 12 || msg[i + 6] != '\\' || msg[i + 7] != 'u')
                                                return false;
                                        l = hex4(msg + i + 8, len - i - 8);
                                        if (l < 0xdc00 || l > 0xdfff)
                                                return false;
                                        i += 6;
                                }
                                i += 4;
                        }
                        i++;    /* skip the escaped character, so "\\u0000" is not taken for one */
                }
        }
        return true;
}

/* Strict UTF-8: no overlong forms, no surrogates (json-c's check lets CESU-8 through), nothing above
 * U+10FFFF. */
static bool utf8_is_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *e = p + len;

        while (p < e) {
                unsigned char c = *p;
                uint32_t cp;
                size_t n;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        cp = c & 0x07;
                } else
                        return false;
                if ((size_t) (e - p) <= n)
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n + 1;
        }
        return true;
}

/* Refuses what json-c accepts but JSON and varlink do not: NaN/Infinity, strings with NULs. */
static int validate_tree(json_object *o, unsigned depth) {
        if (depth > 64)
                return -EBADMSG;

        switch (json_object_get_type(o)) {
        case json_type_double:
                if (!isfinite(json_object_get_double(o)))
                        return -EBADMSG;
                return 0;
        case json_type_string:
                /* Decoded escapes must make valid UTF-8 too: no lone surrogates like \ud800. */
                if (strlen(json_object_get_string(o)) != (size_t) json_object_get_string_len(o) ||
                    !utf8_is_valid(json_object_get_string(o), (size_t) json_object_get_string_len(o)))
                        return -EBADMSG;
                return 0;
        case json_type_object: {
                json_object_object_foreach(o, k, v) {
                        if (!utf8_is_valid(k, strlen(k)))
                                return -EBADMSG;
                        if (v && validate_tree(v, depth + 1) < 0)
                                return -EBADMSG;
                }
                return 0;
        }
        case json_type_array: {
                size_t n = json_object_array_length(o);

                for (size_t i = 0; i < n; i++) {
                        json_object *v = json_object_array_get_idx(o, i);

                        if (v && validate_tree(v, depth + 1) < 0)
                                return -EBADMSG;
                }
                return 0;
        }
        default:
                return 0;
        }
}

/* Parses exactly one JSON object from the bytes, strictly. */
static int parse_object(const char *msg, size_t len, json_object **ret) {
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        json_object *o;

        if (len == 0 || len > INT32_MAX)
                return -EBADMSG;
        if (memchr(msg, 0, len))
                return -EBADMSG;
        if (!lexically_valid(msg, len))
                return -EBADMSG;
        if (!utf8_is_valid(msg, len))
                return -EBADMSG;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

        o = json_tokener_parse_ex(tok, msg, (int) len);
        if (json_tokener_get_error(tok) != json_tokener_success || !o) {
                json_object_put(o);
                return -EBADMSG;
        }
        /* Total: only JSON whitespace may follow the object. */
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!strchr(" \t\r\n", msg[i])) {
                        json_object_put(o);
                        return -EBADMSG;
                }
        if (json_tokener_get_parse_end(tok) > len) {
                json_object_put(o);
                return -EBADMSG;
        }
        if (!json_object_is_type(o, json_type_object) || validate_tree(o, 0) < 0) {
                json_object_put(o);
                return -EBADMSG;
        }

        *ret = o;
        return 0;
}

/* Header keys with a dot are reverse-domain extensions, which we ignore. */
static bool key_is_extension(const char *k) {
        return strchr(k, '.') != NULL;
}

static int get_flag(json_object *v, bool *ret) {
        if (!v) {
                *ret = false;
                return 0;
        }
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* parameters: absent, null and {} are equivalent; returns a reference to a (possibly new) object. */
static int get_parameters(json_object *v, json_object **ret) {
        if (!v) {
                *ret = json_object_new_object();
                return *ret ? 0 : -ENOMEM;
        }
        if (!json_object_is_type(v, json_type_object))
                return -EBADMSG;
        *ret = json_object_get(v);
        return 0;
}

static bool label_is_valid(const char *s, size_t n, bool first_letter) {
        /* [A-Za-z0-9]([-]*[A-Za-z0-9])*, the first label starting with a letter */
        if (n == 0)
                return false;
        if (first_letter && !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return false;
        if (s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

/* interface.Member: interface per varlink's rules (two labels or more), Member [A-Z][A-Za-z0-9]* */
static bool qualified_name_is_valid(const char *s) {
        const char *dot, *p, *member;
        size_t labels = 0;

        if (!s)
                return false;
        dot = strrchr(s, '.');
        if (!dot)
                return false;
        member = dot + 1;
        if (!(member[0] >= 'A' && member[0] <= 'Z'))
                return false;
        for (p = member; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                        return false;

        for (p = s; p < dot;) {
                const char *e = memchr(p, '.', (size_t) (dot - p));

                if (!e)
                        e = dot;
                if (!label_is_valid(p, (size_t) (e - p), labels == 0))
                        return false;
                labels++;
                p = e + 1;
        }
        return labels >= 2 && (size_t) (dot - s) < 256;
}

/**
 * varlink_method_name_is_valid() - whether @s is a fully qualified method name (iface.Method)
 */
bool varlink_method_name_is_valid(const char *s) {
        return qualified_name_is_valid(s);
}

/**
 * varlink_error_name_is_valid() - whether @s is a fully qualified error name (iface.Error)
 */
bool varlink_error_name_is_valid(const char *s) {
        return qualified_name_is_valid(s);
}

/**
 * varlink_parse_call() - decode one call message
 * @msg: the bytes before the NUL
 * @len: their number
 * @ret: the call; release with varlink_call_done()
 *
 * Return: 0, -ENOMEM, or -EBADMSG for anything malformed (bad JSON or UTF-8, trailing bytes, not an
 * object, no valid method, parameters not an object, a non-boolean or second true flag, an unknown
 * header key, \u0000, NaN)
 */
int varlink_parse_call(const char *msg, size_t len, VarlinkCall *ret) {
        json_object *o = NULL, *method = NULL, *params = NULL, *v;
        VarlinkCall c = {};
        int r;

        r = parse_object(msg, len, &o);
        if (r < 0)
                return r;

        {
                json_object_object_foreach(o, k, val) {
                        if (strcmp(k, "method") == 0)
                                method = val;
                        else if (strcmp(k, "parameters") == 0)
                                params = val;
                        else if (strcmp(k, "oneway") == 0)
                                r = get_flag(val, &c.oneway);
                        else if (strcmp(k, "more") == 0)
                                r = get_flag(val, &c.more);
                        else if (strcmp(k, "upgrade") == 0)
                                r = get_flag(val, &c.upgrade);
                        else if (!key_is_extension(k))
                                r = -EBADMSG;
                        if (r < 0)
                                goto fail;
                }
        }

        if (!method || !json_object_is_type(method, json_type_string) ||
            !varlink_method_name_is_valid(json_object_get_string(method))) {
                r = -EBADMSG;
                goto fail;
        }
        if ((int) c.oneway + (int) c.more + (int) c.upgrade > 1) {
                r = -EBADMSG;
                goto fail;
        }

        r = get_parameters(params, &v);
        if (r < 0)
                goto fail;
        c.parameters = v;

        c.method = strdup(json_object_get_string(method));
        if (!c.method) {
                r = -ENOMEM;
                goto fail;
        }

        json_object_put(o);
        *ret = c;
        return 0;

fail:
        json_object_put(c.parameters);
        json_object_put(o);
        return r;
}

/**
 * varlink_match_name_call() - recognise {"method":METHOD,"parameters":{"name":NAME}} byte for byte
 * @msg: a message, without its NUL
 * @len: its length
 * @method: the method name to recognise
 * @name_buf: receives NAME, NUL-terminated
 * @name_size: its size
 *
 * The one call that is made most, in the very bytes varlink_build_call() (our client and PAM
 * module) writes: recognising it costs a few comparisons instead of a json-c parse. Only a message
 * that is exactly this, with NAME made of [A-Za-z0-9_.-] (no escapes, so nothing to decode or
 * validate), matches, and it then means just what varlink_parse_call() would make of it; anything
 * else (other spacing or key order, flags, extensions) does not match and takes the full parser.
 *
 * Return: true on a match
 */
bool varlink_match_name_call(const char *msg, size_t len, const char *method, char *name_buf, size_t name_size) {
        static const char head[] = "{\"method\":\"", mid[] = "\",\"parameters\":{\"name\":\"", tail[] = "\"}}";
        size_t ml = strlen(method), n;
        const char *p = msg, *end = msg + len;

        if (len < sizeof(head) - 1 + ml + sizeof(mid) - 1 + 1 + sizeof(tail) - 1)
                return false;
        if (memcmp(p, head, sizeof(head) - 1) != 0)
                return false;
        p += sizeof(head) - 1;
        if (memcmp(p, method, ml) != 0)
                return false;
        p += ml;
        if (memcmp(p, mid, sizeof(mid) - 1) != 0)
                return false;
        p += sizeof(mid) - 1;

        n = (size_t) (end - p) - (sizeof(tail) - 1);
        if (n == 0 || n >= name_size || memcmp(p + n, tail, sizeof(tail) - 1) != 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", p[i]) || !p[i])
                        return false;
        memcpy(name_buf, p, n);
        name_buf[n] = 0;
        return true;
}

/**
 * varlink_call_done() - release what varlink_parse_call() filled in
 */
void varlink_call_done(VarlinkCall *c) {
        free(c->method);
        json_object_put(c->parameters);
        *c = (VarlinkCall) {};
}

/**
 * varlink_parse_reply() - decode one reply message (client side)
 * @msg: the bytes before the NUL
 * @len: their number
 * @ret: the reply; release with varlink_reply_done()
 *
 * Unknown fields inside parameters are the caller's to ignore; unknown unprefixed header keys, a
 * non-string or invalid error name, or an error with "continues" are -EBADMSG.
 *
 * Return: 0, -ENOMEM or -EBADMSG
 */
int varlink_parse_reply(const char *msg, size_t len, VarlinkReply *ret) {
        json_object *o = NULL, *error = NULL, *params = NULL, *v;
        VarlinkReply rep = {};
        int r = 0;

        r = parse_object(msg, len, &o);
        if (r < 0)
                return r;

        {
                json_object_object_foreach(o, k, val) {
                        if (strcmp(k, "error") == 0)
                                error = val;
                        else if (strcmp(k, "parameters") == 0)
                                params = val;
                        else if (strcmp(k, "continues") == 0)
                                r = get_flag(val, &rep.continues);
                        else if (!key_is_extension(k))
                                r = -EBADMSG;
                        if (r < 0)
                                goto fail;
                }
        }

        if (error) {
                if (!json_object_is_type(error, json_type_string) ||
                    !varlink_error_name_is_valid(json_object_get_string(error)) || rep.continues) {
                        r = -EBADMSG;
                        goto fail;
                }
                rep.error = strdup(json_object_get_string(error));
                if (!rep.error) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        r = get_parameters(params, &v);
        if (r < 0)
                goto fail;
        rep.parameters = v;

        json_object_put(o);
        *ret = rep;
        return 0;

fail:
        free(rep.error);
        json_object_put(o);
        return r;
}

/**
 * varlink_reply_done() - release what varlink_parse_reply() filled in
 */
void varlink_reply_done(VarlinkReply *r) {
        free(r->error);
        json_object_put(r->parameters);
        *r = (VarlinkReply) {};
}

/* Serialises @o with its NUL; wipes json-c's copy of the text, which may carry secrets. */
static int serialize(json_object *o, char **ret_msg, size_t *ret_len) {
        const char *s;
        size_t n;
        char *m;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!s)
                return -ENOMEM;

        m = malloc(n + 1);
        if (!m) {
                explicit_bzero_safe((char *) s, n);
                return -ENOMEM;
        }
        memcpy(m, s, n);
        m[n] = 0;
        explicit_bzero_safe((char *) s, n);

        *ret_msg = m;
        *ret_len = n + 1;
        return 0;
}

/* Builds {key: value, "parameters": params} without taking ownership of params. */
static int build(const char *key, const char *value, json_object *params, bool oneway,
                 char **ret_msg, size_t *ret_len) {
        json_object *o, *v;
        int r;

        if (params && !json_object_is_type(params, json_type_object))
                return -EINVAL;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        if (key) {
                v = json_object_new_string(value);
                if (!v || json_object_object_add(o, key, v) < 0) {
                        json_object_put(v);
                        r = -ENOMEM;
                        goto finish;
                }
        }
        /* Omit empty parameters, as systemd does. */
        if (params && json_object_object_length(params) > 0 &&
            json_object_object_add(o, "parameters", json_object_get(params)) < 0) {
                json_object_put(params);
                r = -ENOMEM;
                goto finish;
        }
        if (oneway) {
                v = json_object_new_boolean(true);
                if (!v || json_object_object_add(o, "oneway", v) < 0) {
                        json_object_put(v);
                        r = -ENOMEM;
                        goto finish;
                }
        }

        r = serialize(o, ret_msg, ret_len);
finish:
        json_object_put(o);
        return r;
}

/**
 * varlink_build_call() - wire bytes of a call
 * @method: fully qualified method name
 * @params: parameters object or NULL; not consumed
 * @oneway: set the oneway flag
 * @ret_msg: the message, NUL-terminated; free() it (erase_and_free() if it carries a secret)
 * @ret_len: bytes to send, the NUL included
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int varlink_build_call(const char *method, json_object *params, bool oneway, char **ret_msg, size_t *ret_len) {
        if (!varlink_method_name_is_valid(method))
                return -EINVAL;
        return build("method", method, params, oneway, ret_msg, ret_len);
}

/**
 * varlink_reply() - wire bytes of a successful reply
 * @params: reply parameters or NULL; not consumed
 * @ret_msg: the message, NUL-terminated; free it with erase_and_free() when it may carry a secret
 * @ret_len: bytes to send, the NUL included
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int varlink_reply(json_object *params, char **ret_msg, size_t *ret_len) {
        return build(NULL, NULL, params, false, ret_msg, ret_len);
}

/**
 * varlink_error() - wire bytes of an error reply
 * @name: fully qualified error name
 * @params: error parameters or NULL; not consumed
 * @ret_msg: the message, NUL-terminated
 * @ret_len: bytes to send, the NUL included
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int varlink_error(const char *name, json_object *params, char **ret_msg, size_t *ret_len) {
        if (!varlink_error_name_is_valid(name))
                return -EINVAL;
        return build("error", name, params, false, ret_msg, ret_len);
}

/**
 * varlink_error_invalid_parameter() - wire bytes of org.varlink.service.InvalidParameter
 * @parameter: the offending parameter's name
 */
int varlink_error_invalid_parameter(const char *parameter, char **ret_msg, size_t *ret_len) {
        json_object *p, *v;
        int r;

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        v = json_object_new_string(parameter);
        if (!v || json_object_object_add(p, "parameter", v) < 0) {
                json_object_put(v);
                json_object_put(p);
                return -ENOMEM;
        }
        r = varlink_error("org.varlink.service.InvalidParameter", p, ret_msg, ret_len);
        json_object_put(p);
        return r;
}

/* Looks up a parameter: 1 present, 0 absent or null (-EINVAL if required). */
static int param_get(json_object *params, const char *name, bool required, json_object **ret) {
        json_object *v = NULL;

        if (!params || !json_object_is_type(params, json_type_object))
                return -EINVAL;
        if (!json_object_object_get_ex(params, name, &v) || !v) {
                *ret = NULL;
                return required ? -EINVAL : 0;
        }
        *ret = v;
        return 1;
}

/**
 * varlink_param_string() - a string parameter
 * @params: the parameters object
 * @name: the parameter
 * @required: absent or null is an error
 * @ret: the string (owned by @params), NULL when absent
 *
 * Return: 1 when present, 0 when absent or null and optional, -EINVAL when missing but required, of
 * another type, or holding a NUL; answer InvalidParameter naming @name
 */
int varlink_param_string(json_object *params, const char *name, bool required, const char **ret) {
        json_object *v;
        int r;

        r = param_get(params, name, required, &v);
        if (r <= 0) {
                if (r == 0)
                        *ret = NULL;
                return r;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        if (strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return -EINVAL;
        *ret = json_object_get_string(v);
        return 1;
}

/**
 * varlink_param_int64() - an integer parameter
 * @params: the parameters object
 * @name: the parameter
 * @required: absent or null is an error
 * @ret: the value, untouched when absent
 *
 * Only JSON integers count: no strings, doubles or bools (which json-c would convert), and nothing
 * json-c may have saturated (INT64_MIN, INT64_MAX and above).
 *
 * Return: 1 when present, 0 when absent and optional, -EINVAL otherwise
 */
int varlink_param_int64(json_object *params, const char *name, bool required, int64_t *ret) {
        json_object *v;
        int64_t i;
        int r;

        r = param_get(params, name, required, &v);
        if (r <= 0)
                return r;
        if (!json_object_is_type(v, json_type_int))
                return -EINVAL;
        errno = 0;
        i = json_object_get_int64(v);
        if (i == INT64_MIN || i == INT64_MAX || errno != 0)
                return -EINVAL;
        *ret = i;
        return 1;
}

/**
 * varlink_param_bool() - a boolean parameter
 *
 * Return: 1 when present, 0 when absent and optional (@ret untouched), -EINVAL otherwise
 */
int varlink_param_bool(json_object *params, const char *name, bool required, bool *ret) {
        json_object *v;
        int r;

        r = param_get(params, name, required, &v);
        if (r <= 0)
                return r;
        if (!json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *ret = json_object_get_boolean(v);
        return 1;
}

/* An object or array parameter, as a borrowed reference: the shared body of the two below. */
static int param_container(json_object *params, const char *name, bool required, json_type type,
                           json_object **ret) {
        json_object *v;
        int r;

        r = param_get(params, name, required, &v);
        if (r <= 0) {
                if (r == 0)
                        *ret = NULL;
                return r;
        }
        if (!json_object_is_type(v, type))
                return -EINVAL;
        *ret = v;
        return 1;
}

/**
 * varlink_param_object() - an object parameter (borrowed reference)
 *
 * Return: 1 when present, 0 when absent and optional (@ret set to NULL), -EINVAL otherwise
 */
int varlink_param_object(json_object *params, const char *name, bool required, json_object **ret) {
        return param_container(params, name, required, json_type_object, ret);
}

/**
 * varlink_param_array() - an array parameter (borrowed reference)
 *
 * Return: 1 when present, 0 when absent and optional (@ret set to NULL), -EINVAL otherwise
 */
int varlink_param_array(json_object *params, const char *name, bool required, json_object **ret) {
        return param_container(params, name, required, json_type_array, ret);
}

/**
 * varlink_check_unknown() - refuse parameters the method does not declare
 * @params: the parameters object
 * @allowed: NULL-terminated list of declared names, may be NULL for none
 * @ret_bad: the first undeclared name (owned by @params), for InvalidParameter
 *
 * Return: 0, or -EINVAL with @ret_bad set
 */
int varlink_check_unknown(json_object *params, const char * const *allowed, const char **ret_bad) {
        if (!params || !json_object_is_type(params, json_type_object))
                return -EINVAL;

        json_object_object_foreach(params, k, v) {
                bool found = false;

                (void) v;
                for (const char * const *a = allowed; a && *a; a++)
                        if (strcmp(*a, k) == 0) {
                                found = true;
                                break;
                        }
                if (!found) {
                        if (ret_bad)
                                *ret_bad = k;
                        return -EINVAL;
                }
        }
        return 0;
}
