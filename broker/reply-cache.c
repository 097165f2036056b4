/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The cached wire bytes of a Get answer (reply-cache.h).
 *
 * The answer is a function of the secret, the credential's name and format, and the lease's times
 * shown in wall-clock time (issued_usec, expires_usec, rotate_after_usec, renewable). The secret only
 * changes with a new read, and the lease engine clears the cache whenever it drops or replaces the
 * answer. The times change on renewal, capping and replacement: rather than trusting every such path
 * to clear the cache, the times the bytes were built from are kept as the key and compared on every
 * hit, so a stale answer cannot be served after any change, clearing or not. The boottime to
 * wall-clock offset is compared too, within REPLY_CACHE_CLOCK_SLACK_USEC.
 *
 * The bytes carry the secret: they live in the locked, undumpable arena (Secret) and are wiped when
 * cleared. Pure: no I/O, no logging.
 */

#include <string.h>

#include "broker/reply-cache.h"
#include "common/secret.h"

static bool key_equal(const ReplyKey *a, const ReplyKey *b) {
        return a->issued == b->issued && a->end == b->end && a->cutoff == b->cutoff && a->leased == b->leased &&
                a->renewable == b->renewable;
}

/**
 * reply_cache_get() - the cached bytes, if they were built from @key and a close enough clock offset
 * @c: the cache
 * @key: the lease's times now
 * @realtime_offset: CLOCK_REALTIME - CLOCK_BOOTTIME now
 * @ret_msg: the bytes, valid until the cache is changed
 * @ret_len: their length, the NUL included
 *
 * Return: true on a hit
 */
bool reply_cache_get(const ReplyCache *c, const ReplyKey *key, usec_t realtime_offset, const char **ret_msg,
                     size_t *ret_len) {
        usec_t drift;

        if (!c->msg || !key_equal(&c->key, key))
                return false;
        drift = realtime_offset > c->realtime_offset ? realtime_offset - c->realtime_offset
                                                     : c->realtime_offset - realtime_offset;
        if (drift > REPLY_CACHE_CLOCK_SLACK_USEC)
                return false;
        *ret_msg = secret_get(c->msg);
        *ret_len = secret_size(c->msg);
        return true;
}

/**
 * reply_cache_put() - replace the cached bytes with a copy of @msg (in the secret arena)
 *
 * The caller wipes its own copy. On failure the cache is left empty.
 *
 * Return: 0 or -ENOMEM
 */
int reply_cache_put(ReplyCache *c, const ReplyKey *key, usec_t realtime_offset, const char *msg, size_t len) {
        int r;

        reply_cache_clear(c);
        r = secret_new(msg, len, &c->msg);
        if (r < 0)
                return r;
        c->key = *key;
        c->realtime_offset = realtime_offset;
        return 0;
}

/**
 * reply_cache_clear() - drop and wipe the cached bytes
 */
void reply_cache_clear(ReplyCache *c) {
        c->msg = secret_free(c->msg);
        c->key = (ReplyKey) {};
        c->realtime_offset = 0;
}
