/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Configuration. The file decides who may fetch which secret, so parsing is strict: unknown sections
 * and keys, a key given twice under one section header, malformed values, over-long lines and files
 * that are not regular files are errors naming file (and line), never silently ignored. inih does the tokenising (Debian's build: 200-byte lines, continuation lines, ';' and '#'
 * comments); our line reader counts lines, refuses over-long ones and sees section headers itself, so
 * empty and unknown sections are caught too.
 *
 * This file also reads the broker's own Vault login secrets (config_load_secrets()), which go
 * straight into the locked arena.
 */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ini.h>

#include "broker/config.h"
#include "broker/format.h"
#include "common/hashtable.h"
#include "common/memory-util.h"
#include "common/net-util.h"

#define CONFIG_LINE_MAX 200             /* Debian's inih: INI_MAX_LINE */
#define CONFIG_SEC_MAX (10ULL * 365ULL * 24ULL * 3600ULL)
#define CONFIG_SECRET_FILE_MAX (64U * 1024U)
#define CONFIG_DROPINS_MAX 1024U

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

typedef enum SectionKind {
        SECTION_NONE,
        SECTION_VAULT,
        SECTION_BROKER,
        SECTION_CREDENTIAL,
        SECTION_BAD,
} SectionKind;

typedef struct KeySeen {
        char *key;
        unsigned line;
} KeySeen;

typedef struct ParseContext {
        Config *config;
        const char *filename;

        /* line reader */
        const char *text;               /* string input, or */
        FILE *file;                     /* file input */
        unsigned line;
        bool continuation;              /* the current line is an indented continuation */
        bool have_key;                  /* a key was seen since the last section header */
        bool eof;

        /* state */
        SectionKind section;
        size_t credential;              /* index of the current credential section */
        KeySeen *keys_seen;             /* single-valued keys set since the last section header */
        size_t n_keys_seen;
        char **origins;                 /* "file:line" of each credential's first section header */
        char *error;                    /* first error, "file:line: text" */
        unsigned error_line;
} ParseContext;

static const char * const vault_auth_table[_VAULT_AUTH_MAX] = {
        [VAULT_AUTH_APPROLE] = "approle",
        [VAULT_AUTH_TOKEN] = "token",
};

static const char * const credential_identity_table[_CREDENTIAL_IDENTITY_MAX] = {
        [CREDENTIAL_IDENTITY_BROKER] = "broker",
        [CREDENTIAL_IDENTITY_USER] = "user",
};

/** vault_auth_to_string() - "approle" or "token"; NULL when out of range */
const char *vault_auth_to_string(VaultAuth a) {
        if (a < 0 || a >= _VAULT_AUTH_MAX)
                return NULL;
        return vault_auth_table[a];
}

/** vault_auth_from_string() - parse "approle" or "token"; _VAULT_AUTH_INVALID otherwise */
VaultAuth vault_auth_from_string(const char *s) {
        for (int i = 0; i < _VAULT_AUTH_MAX; i++)
                if (s && strcmp(s, vault_auth_table[i]) == 0)
                        return (VaultAuth) i;
        return _VAULT_AUTH_INVALID;
}

/** credential_identity_to_string() - "broker" or "user"; NULL when out of range */
const char *credential_identity_to_string(CredentialIdentity i) {
        if (i < 0 || i >= _CREDENTIAL_IDENTITY_MAX)
                return NULL;
        return credential_identity_table[i];
}

/** credential_identity_from_string() - parse "broker" or "user"; _CREDENTIAL_IDENTITY_INVALID otherwise */
CredentialIdentity credential_identity_from_string(const char *s) {
        for (int i = 0; i < _CREDENTIAL_IDENTITY_MAX; i++)
                if (s && strcmp(s, credential_identity_table[i]) == 0)
                        return (CredentialIdentity) i;
        return _CREDENTIAL_IDENTITY_INVALID;
}

/**
 * credential_name_is_valid() - whether @name matches [A-Za-z0-9_.-]+ (also a valid systemd
 * credential id: not "." or "..", at most 255 bytes)
 */
bool credential_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > 255 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(isascii((unsigned char) name[i]) && (isalnum((unsigned char) name[i]) ||
                      name[i] == '_' || name[i] == '.' || name[i] == '-')))
                        return false;
        return true;
}

static void credential_config_done(CredentialConfig *c) {
        free(c->name);
        free(c->path);
        strv_free(c->allow_users);
        strv_free(c->allow_groups);
        strv_free(c->allow_units);
        free(c->format);
        free(c->allow_uids);
        free(c->allow_gids);
}

/**
 * config_new() - a configuration holding only the defaults
 * @ret: the new configuration
 *
 * Return: 0 or -ENOMEM
 */
int config_new(Config **ret) {
        Config *c;

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;

        c->vault = (VaultConfig) {
                .auth = VAULT_AUTH_APPROLE,
                .timeout_usec = 30 * USEC_PER_SEC,
                .max_concurrent_requests = 32,
        };
        c->vault.user_auth_mount = strdup("userpass");
        if (!c->vault.user_auth_mount) {
                free(c);
                return -ENOMEM;
        }
        c->broker = (BrokerConfig) {
                .idle_release_usec = 3600 * USEC_PER_SEC,
                .revoke_on_stop = false,
                .idle_exit_usec = 0,
                .max_connections_per_uid = 64,
                .max_connections_root = 4096,
                .max_requests_per_uid = 16,
                .request_timeout_usec = 10 * USEC_PER_SEC,
                .max_message_size = 65536,
        };

        *ret = c;
        return 0;
}

/**
 * config_free() - free a configuration and wipe the secrets in it
 * @c: the configuration or NULL
 *
 * Return: NULL
 */
Config *config_free(Config *c) {
        if (!c)
                return NULL;

        free(c->vault.address);
        free(c->vault.ca_file);
        free(c->vault.namespace);
        free(c->vault.role_id_file);
        free(c->vault.secret_id_file);
        free(c->vault.token_file);
        free(c->vault.user_auth_mount);
        secret_free(c->vault.role_id);
        secret_free(c->vault.secret_id);
        secret_free(c->vault.token);

        for (size_t i = 0; i < c->n_credentials; i++)
                credential_config_done(&c->credentials[i]);
        free(c->credentials);
        hashtable_done(&c->credential_index);
        free(c);
        return NULL;
}

/**
 * config_find_credential() - the [credential NAME] section called @name
 *
 * Return: the credential, or NULL
 */
const CredentialConfig *config_find_credential(const Config *c, const char *name) {
        if (!c || !name)
                return NULL;
        /* every Get looks its credential up: by name in the index, once the parse has built it */
        if (c->credential_index.n_entries == c->n_credentials && c->n_credentials > 0) {
                uint64_t h = hash_string(HASH_INIT, name);

                HASHTABLE_FOREACH_HASH(e, &c->credential_index, h) {
                        const CredentialConfig *cc = (const CredentialConfig *) ((const char *) e -
                                                                                 offsetof(CredentialConfig, index));

                        if (strcmp(cc->name, name) == 0)
                                return cc;
                }
                return NULL;
        }
        for (size_t i = 0; i < c->n_credentials; i++)
                if (strcmp(c->credentials[i].name, name) == 0)
                        return &c->credentials[i];
        return NULL;
}

_printf_(3, 4)
static int fail_at(ParseContext *ctx, unsigned line, const char *fmt, ...) {
        va_list ap;
        char *m = NULL, *e = NULL;

        /* Keep the first error only. */
        if (ctx->error)
                return -EINVAL;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return -ENOMEM;

        if (line > 0) {
                if (asprintf(&e, "%s:%u: %s", ctx->filename, line, m) < 0)
                        e = NULL;
        } else if (asprintf(&e, "%s: %s", ctx->filename, m) < 0)
                e = NULL;
        free(m);
        if (!e)
                return -ENOMEM;

        ctx->error = e;
        ctx->error_line = line;
        return -EINVAL;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                *--e = 0;
        return s;
}

static int credential_get(ParseContext *ctx, const char *name, size_t *ret) {
        Config *c = ctx->config;
        CredentialConfig *n;
        char **o;
        char *origin = NULL;

        for (size_t i = 0; i < c->n_credentials; i++)
                if (strcmp(c->credentials[i].name, name) == 0) {
                        *ret = i;
                        return 0;
                }

        n = reallocarray(c->credentials, c->n_credentials + 1, sizeof(CredentialConfig));
        if (!n)
                return -ENOMEM;
        c->credentials = n;
        o = reallocarray(ctx->origins, c->n_credentials + 1, sizeof(char *));
        if (!o)
                return -ENOMEM;
        ctx->origins = o;

        if (asprintf(&origin, "%s:%u", ctx->filename, ctx->line) < 0)
                return -ENOMEM;

        n[c->n_credentials] = (CredentialConfig) {
                .name = strdup(name),
                .refresh_usec = 300 * USEC_PER_SEC,
                .identity = CREDENTIAL_IDENTITY_BROKER,
                .provision = false,
                .release_on_logout = true,
        };
        if (!n[c->n_credentials].name) {
                free(origin);
                return -ENOMEM;
        }
        o[c->n_credentials] = origin;
        *ret = c->n_credentials++;
        return 0;
}

/* A key may be set once per section header: forget the keys of the previous one. */
static void keys_seen_clear(ParseContext *ctx) {
        for (size_t i = 0; i < ctx->n_keys_seen; i++)
                free(ctx->keys_seen[i].key);
        ctx->n_keys_seen = 0;
}

/* The line @key was first set on since the last section header, 0 if not. */
static unsigned key_seen(const ParseContext *ctx, const char *key) {
        for (size_t i = 0; i < ctx->n_keys_seen; i++)
                if (strcmp(ctx->keys_seen[i].key, key) == 0)
                        return ctx->keys_seen[i].line;
        return 0;
}

static int key_seen_add(ParseContext *ctx, const char *key) {
        KeySeen *k;
        char *d;

        d = strdup(key);
        if (!d)
                return -ENOMEM;
        k = reallocarray(ctx->keys_seen, ctx->n_keys_seen + 1, sizeof(KeySeen));
        if (!k) {
                free(d);
                return -ENOMEM;
        }
        ctx->keys_seen = k;
        k[ctx->n_keys_seen++] = (KeySeen) { .key = d, .line = ctx->line };
        return 0;
}

/* Called by the line reader for every section header line: "[name]" with optional trailing text. */
static int section_begin(ParseContext *ctx, char *line) {
        char *end, *name;
        int r;

        end = strchr(line, ']');
        if (!end)
                return 0;       /* inih reports the syntax error */
        *end = 0;
        keys_seen_clear(ctx);
        name = strip(line + 1);

        if (strcmp(name, "vault") == 0)
                ctx->section = SECTION_VAULT;
        else if (strcmp(name, "broker") == 0)
                ctx->section = SECTION_BROKER;
        else if (strncmp(name, "credential", 10) == 0 && (name[10] == ' ' || name[10] == '\t')) {
                char *cn = strip(name + 10);

                if (!credential_name_is_valid(cn)) {
                        ctx->section = SECTION_BAD;
                        return fail_at(ctx, ctx->line, "invalid credential name '%s' (allowed: A-Z a-z 0-9 _ . -)", cn);
                }
                r = credential_get(ctx, cn, &ctx->credential);
                if (r < 0)
                        return r;
                ctx->section = SECTION_CREDENTIAL;
        } else if (strcmp(name, "credential") == 0) {
                ctx->section = SECTION_BAD;
                return fail_at(ctx, ctx->line, "section [credential] needs a name: [credential NAME]");
        } else {
                ctx->section = SECTION_BAD;
                return fail_at(ctx, ctx->line, "unknown section [%s]", name);
        }
        return 0;
}

/* fgets()-style reader for inih: counts lines, refuses over-long ones, notes sections and continuations. */
static char *reader(char *str, int num, void *userdata) {
        ParseContext *ctx = userdata;
        char buf[CONFIG_LINE_MAX + 8];
        size_t n = 0, total = 0, content;
        bool nul = false;
        int ch = EOF;

        if (ctx->eof || num <= 3)
                return NULL;

        for (;;) {
                if (ctx->file) {
                        ch = fgetc(ctx->file);
                        if (ch == EOF)
                                break;
                } else {
                        if (*ctx->text == 0)
                                break;
                        ch = (unsigned char) *ctx->text++;
                }
                if (ch == 0) {
                        nul = true;
                        ch = ' ';
                }
                total++;
                if (n < sizeof(buf) - 1 && n < (size_t) num - 1)
                        buf[n++] = (char) ch;
                if (ch == '\n')
                        break;
        }

        if (total == 0) {
                ctx->eof = true;
                return NULL;
        }

        ctx->line++;
        buf[n] = 0;

        content = total;
        if (ch == '\n')
                content--;
        if (content > 0 && n >= content && buf[content - 1] == '\r')
                content--;

        if (nul || content > (size_t) num - 3) {
                if (nul)
                        (void) fail_at(ctx, ctx->line, "NUL byte in line");
                else
                        (void) fail_at(ctx, ctx->line, "line too long (at most %d bytes)", num - 3);
                /* hand inih an empty line, so it does not parse the fragment */
                str[0] = '\n';
                str[1] = 0;
                return str;
        }

        memcpy(str, buf, n + 1);

        {
                char *t = buf;
                bool indented = *t == ' ' || *t == '\t';

                t = strip(t);
                /* Mirror inih's order: comment, continuation (indented, after a key), section. */
                ctx->continuation = false;
                if (*t == ';' || *t == '#' || *t == 0)
                        ;
                else if (indented && ctx->have_key)
                        ctx->continuation = true;
                else if (*t == '[') {
                        ctx->have_key = false;
                        (void) section_begin(ctx, t);
                }
        }

        return str;
}

static int parse_bool(const char *v, bool *ret) {
        static const char * const yes[] = { "yes", "true", "1", "on" };
        static const char * const no[] = { "no", "false", "0", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(v, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

static int parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t x = 0;

        if (!*v)
                return -EINVAL;
        for (const char *p = v; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (x > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                x = x * 10 + (uint64_t) (*p - '0');
        }
        if (x < min || x > max)
                return -ERANGE;
        *ret = x;
        return 0;
}

static bool has_control_or_space(const char *v) {
        for (const unsigned char *p = (const unsigned char *) v; *p; p++)
                if (*p <= ' ' || *p == 0x7f)
                        return true;
        return false;
}

static bool url_host_is_loopback(const char *host, size_t n) {
        _cleanup_free_ char *h = strndup(host, n);

        return h && host_is_loopback(h);
}

/* http(s)://host[:port][/prefix]; returns the host's start and length. */
static int parse_address(const char *v, bool *ret_https, const char **ret_host, size_t *ret_host_len) {
        const char *h, *e;

        if (has_control_or_space(v))
                return -EINVAL;
        if (strncasecmp(v, "https://", 8) == 0) {
                *ret_https = true;
                h = v + 8;
        } else if (strncasecmp(v, "http://", 7) == 0) {
                *ret_https = false;
                h = v + 7;
        } else
                return -EINVAL;

        if (*h == '[') {
                e = strchr(h, ']');
                if (!e)
                        return -EINVAL;
                e++;
        } else
                e = h + strcspn(h, ":/?#");
        if (e == h || strchr(h, '@') || strchr(h, '?') || strchr(h, '#'))
                return -EINVAL;
        if (*e == ':') {
                const char *p = e + 1;
                size_t digits = strspn(p, "0123456789");

                if (digits == 0 || digits > 5 || (p[digits] != 0 && p[digits] != '/'))
                        return -EINVAL;
        } else if (*e != 0 && *e != '/')
                return -EINVAL;

        *ret_host = h;
        *ret_host_len = (size_t) (e - h);
        return 0;
}

static bool vault_path_is_valid(const char *v) {
        const char *p = v;

        if (!*v || *v == '/' || has_control_or_space(v))
                return false;
        /* It goes into a URL as it is: a query or fragment would be cut off by curl (and fail
         * every Get), an escape would name another path. */
        if (strpbrk(v, "?#%\\\""))
                return false;
        /* No empty, "." or ".." segments. */
        while (*p) {
                size_t n = strcspn(p, "/");

                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += n;
                if (*p == '/') {
                        p++;
                        if (!*p)
                                return false;
                }
        }
        return true;
}

static int set_string(char **field, const char *v) {
        char *d = strdup(v);

        if (!d)
                return -ENOMEM;
        free(*field);
        *field = d;
        return 0;
}

static int add_list(ParseContext *ctx, const char *key, char ***list, const char *v) {
        const char *p = v;
        int r;

        while (*p) {
                size_t n;
                char *w;

                p += strspn(p, " \t");
                n = strcspn(p, " \t");
                if (n == 0)
                        break;
                w = strndup(p, n);
                if (!w)
                        return -ENOMEM;
                for (const unsigned char *c = (const unsigned char *) w; *c; c++)
                        if (*c < ' ' || *c == 0x7f || *c == ',') {
                                r = fail_at(ctx, ctx->line, "invalid entry '%s' in %s (separate entries by spaces)", w, key);
                                free(w);
                                return r;
                        }
                if (!strv_contains(*list, w)) {
                        r = strv_consume(list, w);
                        if (r < 0)
                                return r;
                } else
                        free(w);
                p += n;
        }
        return 0;
}

static int parse_seconds(ParseContext *ctx, const char *key, const char *v, uint64_t min, usec_t *ret) {
        uint64_t x = 0;     /* set on success only; gcc -O3 cannot see that fail_at() is negative */

        if (parse_uint(v, min, CONFIG_SEC_MAX, &x) < 0)
                return fail_at(ctx, ctx->line, "invalid value '%s' for %s (seconds, %llu to %llu)", v, key,
                               (unsigned long long) min, (unsigned long long) CONFIG_SEC_MAX);
        *ret = x * USEC_PER_SEC;
        return 0;
}

static int parse_count(ParseContext *ctx, const char *key, const char *v, uint64_t min, uint64_t max, uint64_t *ret) {
        if (parse_uint(v, min, max, ret) < 0)
                return fail_at(ctx, ctx->line, "invalid value '%s' for %s (integer, %llu to %llu)", v, key,
                               (unsigned long long) min, (unsigned long long) max);
        return 0;
}

static int parse_bool_key(ParseContext *ctx, const char *key, const char *v, bool *ret) {
        if (parse_bool(v, ret) < 0)
                return fail_at(ctx, ctx->line, "invalid value '%s' for %s (yes or no)", v, key);
        return 0;
}

static int parse_file_key(ParseContext *ctx, const char *key, const char *v, char **field) {
        if (!*v || has_control_or_space(v))
                return fail_at(ctx, ctx->line, "invalid file name '%s' for %s", v, key);
        return set_string(field, v);
}

static int handle_vault(ParseContext *ctx, const char *k, const char *v) {
        VaultConfig *c = &ctx->config->vault;

        if (strcmp(k, "address") == 0) {
                const char *h;
                size_t hl;
                bool https;
                char *a;
                size_t n;

                if (parse_address(v, &https, &h, &hl) < 0)
                        return fail_at(ctx, ctx->line, "invalid address '%s' (an http:// or https:// URL)", v);
                a = strdup(v);
                if (!a)
                        return -ENOMEM;
                n = strlen(a);
                while (n > 0 && a[n - 1] == '/')
                        a[--n] = 0;
                /* "HTTPS://" is valid but the Vault client compares schemes: normalise */
                for (char *p = a; *p != ':'; p++)
                        *p = (char) tolower((unsigned char) *p);
                free(c->address);
                c->address = a;
                return 0;
        }
        if (strcmp(k, "ca_file") == 0)
                return parse_file_key(ctx, k, v, &c->ca_file);
        if (strcmp(k, "allow_http") == 0)
                return parse_bool_key(ctx, k, v, &c->allow_http);
        if (strcmp(k, "namespace") == 0) {
                if (!*v || has_control_or_space(v))
                        return fail_at(ctx, ctx->line, "invalid namespace '%s'", v);
                return set_string(&c->namespace, v);
        }
        if (strcmp(k, "auth") == 0) {
                VaultAuth a = vault_auth_from_string(v);

                if (a < 0)
                        return fail_at(ctx, ctx->line, "invalid value '%s' for auth (approle or token)", v);
                c->auth = a;
                return 0;
        }
        if (strcmp(k, "role_id_file") == 0)
                return parse_file_key(ctx, k, v, &c->role_id_file);
        if (strcmp(k, "secret_id_file") == 0)
                return parse_file_key(ctx, k, v, &c->secret_id_file);
        if (strcmp(k, "token_file") == 0)
                return parse_file_key(ctx, k, v, &c->token_file);
        if (strcmp(k, "timeout_sec") == 0)
                return parse_seconds(ctx, k, v, 1, &c->timeout_usec);
        if (strcmp(k, "max_concurrent_requests") == 0) {
                uint64_t x = 0;
                int r;

                r = parse_count(ctx, k, v, 1, 4096, &x);
                if (r >= 0)
                        c->max_concurrent_requests = (unsigned) x;
                return r;
        }
        if (strcmp(k, "user_auth_mount") == 0) {
                if (!vault_path_is_valid(v))
                        return fail_at(ctx, ctx->line, "invalid mount '%s' for user_auth_mount", v);
                return set_string(&c->user_auth_mount, v);
        }

        return fail_at(ctx, ctx->line, "unknown key '%s' in [vault]", k);
}

static int handle_broker(ParseContext *ctx, const char *k, const char *v) {
        BrokerConfig *c = &ctx->config->broker;
        uint64_t x = 0;     /* set on success only; gcc -O3 cannot see that fail_at() is negative */
        int r;

        if (strcmp(k, "idle_release_sec") == 0)
                return parse_seconds(ctx, k, v, 0, &c->idle_release_usec);
        if (strcmp(k, "revoke_on_stop") == 0)
                return parse_bool_key(ctx, k, v, &c->revoke_on_stop);
        if (strcmp(k, "idle_exit_sec") == 0)
                return parse_seconds(ctx, k, v, 0, &c->idle_exit_usec);
        if (strcmp(k, "request_timeout_sec") == 0)
                return parse_seconds(ctx, k, v, 1, &c->request_timeout_usec);

        if (strcmp(k, "max_connections_per_uid") == 0) {
                r = parse_count(ctx, k, v, 1, 1000000, &x);
                if (r >= 0)
                        c->max_connections_per_uid = (unsigned) x;
                return r;
        }
        if (strcmp(k, "max_connections_root") == 0) {
                r = parse_count(ctx, k, v, 1, 1000000, &x);
                if (r >= 0)
                        c->max_connections_root = (unsigned) x;
                return r;
        }
        if (strcmp(k, "max_requests_per_uid") == 0) {
                r = parse_count(ctx, k, v, 1, 1000000, &x);
                if (r >= 0)
                        c->max_requests_per_uid = (unsigned) x;
                return r;
        }
        if (strcmp(k, "max_message_size") == 0) {
                r = parse_count(ctx, k, v, 1024, 16U * 1024U * 1024U, &x);
                if (r >= 0)
                        c->max_message_size = (size_t) x;
                return r;
        }

        return fail_at(ctx, ctx->line, "unknown key '%s' in [broker]", k);
}

static int handle_credential(ParseContext *ctx, const char *k, const char *v) {
        CredentialConfig *c = &ctx->config->credentials[ctx->credential];

        if (strcmp(k, "path") == 0) {
                if (!vault_path_is_valid(v))
                        return fail_at(ctx, ctx->line, "invalid path '%s' in [credential %s] (no leading '/', no empty, '.' "
                                       "or '..' segment, no space or any of ?#%%\\\")",
                                       v, c->name);
                return set_string(&c->path, v);
        }
        if (strcmp(k, "allow_users") == 0)
                return add_list(ctx, k, &c->allow_users, v);
        if (strcmp(k, "allow_groups") == 0)
                return add_list(ctx, k, &c->allow_groups, v);
        if (strcmp(k, "allow_units") == 0)
                return add_list(ctx, k, &c->allow_units, v);
        if (strcmp(k, "format") == 0) {
                _cleanup_free_ char *e = NULL;
                int r;

                r = format_validate(v, &e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail_at(ctx, ctx->line, "invalid format in [credential %s]: %s", c->name, e ?: "bad template");
                return set_string(&c->format, v);
        }
        if (strcmp(k, "refresh_sec") == 0)
                return parse_seconds(ctx, k, v, 1, &c->refresh_usec);
        if (strcmp(k, "identity") == 0) {
                CredentialIdentity i = credential_identity_from_string(v);

                if (i < 0)
                        return fail_at(ctx, ctx->line, "invalid value '%s' for identity (broker or user)", v);
                c->identity = i;
                return 0;
        }
        if (strcmp(k, "provision") == 0)
                return parse_bool_key(ctx, k, v, &c->provision);
        if (strcmp(k, "release_on_logout") == 0)
                return parse_bool_key(ctx, k, v, &c->release_on_logout);

        return fail_at(ctx, ctx->line, "unknown key '%s' in [credential %s]", k, c->name);
}

static bool key_is_list(const char *k) {
        return strcmp(k, "allow_users") == 0 || strcmp(k, "allow_groups") == 0 || strcmp(k, "allow_units") == 0;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        ParseContext *ctx = userdata;
        int r;

        (void) section;         /* we track sections in the reader, with line numbers */
        ctx->have_key = true;

        if (ctx->continuation) {
                if (!key_is_list(name) && strcmp(name, "format") != 0) {
                        (void) fail_at(ctx, ctx->line, "key '%s' does not take continuation lines", name);
                        return 0;
                }
                if (strcmp(name, "format") == 0 && ctx->section == SECTION_CREDENTIAL) {
                        /* A format continued on the next line: joined with a newline. */
                        CredentialConfig *c = &ctx->config->credentials[ctx->credential];
                        _cleanup_free_ char *j = NULL, *e = NULL;

                        if (!c->format || asprintf(&j, "%s\n%s", c->format, value) < 0)
                                return 0;
                        r = format_validate(j, &e);
                        if (r < 0) {
                                (void) fail_at(ctx, ctx->line, "invalid format in [credential %s]: %s", c->name,
                                               e ?: "bad template");
                                return 0;
                        }
                        free(c->format);
                        c->format = TAKE_PTR(j);
                        return 1;
                }
        }

        /* Within one section, a second value of a key is a mistake, not an override (drop-ins are
         * for that): only the list keys, which accumulate, may be repeated. */
        if (!key_is_list(name)) {
                unsigned first = key_seen(ctx, name);   /* 0 outside [vault], [broker], [credential] */

                if (first > 0) {
                        if (ctx->section == SECTION_CREDENTIAL)
                                (void) fail_at(ctx, ctx->line, "duplicate key '%s' in [credential %s] (first set on line %u)",
                                               name, ctx->config->credentials[ctx->credential].name, first);
                        else
                                (void) fail_at(ctx, ctx->line, "duplicate key '%s' in [%s] (first set on line %u)",
                                               name, ctx->section == SECTION_VAULT ? "vault" : "broker", first);
                        return 0;
                }
        }

        switch (ctx->section) {
        case SECTION_NONE:
                r = fail_at(ctx, ctx->line, "key '%s' outside of a section", name);
                break;
        case SECTION_BAD:
                r = 0;  /* already reported at the section header */
                break;
        case SECTION_VAULT:
                r = handle_vault(ctx, name, value);
                break;
        case SECTION_BROKER:
                r = handle_broker(ctx, name, value);
                break;
        case SECTION_CREDENTIAL:
                r = handle_credential(ctx, name, value);
                break;
        default:
                r = -EINVAL;
        }
        if (r >= 0 && ctx->section != SECTION_BAD && !key_is_list(name))
                r = key_seen_add(ctx, name);
        if (r == -ENOMEM && !ctx->error)
                ctx->error = strdup("out of memory");
        return r >= 0;
}

/* Parses one file or string into ctx->config. */
static int parse_one(ParseContext *ctx) {
        int r;

        ctx->line = 0;
        ctx->eof = false;
        ctx->continuation = false;
        ctx->have_key = false;
        ctx->section = SECTION_NONE;
        keys_seen_clear(ctx);

        r = ini_parse_stream(reader, ctx, handler, ctx);
        if (r == -2 && !ctx->error)
                return -ENOMEM;
        if (r > 0 && !ctx->error)
                (void) fail_at(ctx, (unsigned) r, "syntax error (expected [section] or key = value)");
        if (r != 0 || ctx->error)
                return ctx->error && strcmp(ctx->error, "out of memory") == 0 ? -ENOMEM : -EINVAL;
        return 0;
}

/* Checks that need the whole configuration. */
static int validate(ParseContext *ctx) {
        Config *c = ctx->config;

        if (!c->vault.address)
                return fail_at(ctx, 0, "[vault] address is not set");
        {
                const char *h;
                size_t hl;
                bool https;

                if (parse_address(c->vault.address, &https, &h, &hl) < 0)
                        return fail_at(ctx, 0, "invalid address '%s'", c->vault.address);
                if (!https && !c->vault.allow_http && !url_host_is_loopback(h, hl))
                        return fail_at(ctx, 0, "address '%s' uses plain http to a host that is not loopback; "
                                       "use https or set allow_http = yes", c->vault.address);
        }

        for (size_t i = 0; i < c->n_credentials; i++)
                if (!c->credentials[i].path) {
                        /* The error names where the section was first opened. */
                        char *e = NULL;

                        if (ctx->error)
                                return -EINVAL;
                        if (asprintf(&e, "%s: [credential %s] has no path", ctx->origins[i], c->credentials[i].name) < 0)
                                return -ENOMEM;
                        ctx->error = e;
                        return -EINVAL;
                }

        return 0;
}

static void context_done(ParseContext *ctx, size_t n_origins) {
        for (size_t i = 0; i < n_origins; i++)
                free(ctx->origins[i]);
        free(ctx->origins);
        keys_seen_clear(ctx);
        free(ctx->keys_seen);
        free(ctx->error);
}

static int finish(ParseContext *ctx, int r, Config **ret, char **ret_error) {
        size_t n = ctx->config ? ctx->config->n_credentials : 0;

        if (r >= 0)
                r = validate(ctx);
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(ctx->error);
                ctx->config = config_free(ctx->config);
                context_done(ctx, n);
                return r;
        }

        /* the credentials array no longer moves: index it by name (on failure lookups walk it) */
        for (size_t i = 0; i < ctx->config->n_credentials; i++)
                if (hashtable_add(&ctx->config->credential_index, &ctx->config->credentials[i].index,
                                  hash_string(HASH_INIT, ctx->config->credentials[i].name)) < 0) {
                        hashtable_done(&ctx->config->credential_index);
                        break;
                }

        *ret = TAKE_PTR(ctx->config);
        context_done(ctx, n);
        return 0;
}

/**
 * config_parse_string() - parse configuration text (tests, fuzzing)
 * @text: the configuration
 * @filename: name used in error messages
 * @ret: the configuration, free with config_free()
 * @ret_error: on -EINVAL, "file:line: what is wrong", free() it; may be NULL
 *
 * Return: 0, -EINVAL or -ENOMEM
 */
int config_parse_string(const char *text, const char *filename, Config **ret, char **ret_error) {
        ParseContext ctx = { .filename = filename ?: "<string>", .text = text };
        int r;

        if (ret_error)
                *ret_error = NULL;
        r = config_new(&ctx.config);
        if (r < 0)
                return r;
        r = parse_one(&ctx);
        return finish(&ctx, r, ret, ret_error);
}

/*
 * Who may decide what the broker hands out, and to whom: the configuration (and its drop-in
 * directory) must be owned by root or the broker's own user and writable by nobody else; a login
 * secret must in addition be unreadable by anyone else. Returns NULL or what is wrong.
 */
static const char *untrusted(const struct stat *st, mode_t forbidden, char *buf, size_t size) {
        if (st->st_uid != 0 && st->st_uid != geteuid()) {
                (void) snprintf(buf, size, "owned by uid %u; it must be owned by root or the broker's user",
                                (unsigned) st->st_uid);
                return buf;
        }
        if (st->st_mode & forbidden) {
                (void) snprintf(buf, size, "%s by others than its owner (mode %04o)",
                                forbidden & 0044 ? "readable or writable" : "writable",
                                (unsigned) (st->st_mode & 07777));
                return buf;
        }
        return NULL;
}

static int parse_path(ParseContext *ctx, const char *path) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        char why[128];
        int r;

        /* O_NONBLOCK: a FIFO without a writer must not hang us in open(); it is refused below */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = negative_errno();
                (void) fail_at(ctx, 0, "cannot open: %s", strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode)) {
                (void) fail_at(ctx, 0, "is a directory, not a regular file");
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) fail_at(ctx, 0, "not a regular file");
                return -EBADFD;
        }
        f = fdopen(fd, "re");
        if (!f)
                return negative_errno();
        TAKE_FD(fd);
        if (untrusted(&st, 0022, why, sizeof(why))) {
                (void) fail_at(ctx, 0, "%s", why);
                return -EPERM;
        }
        ctx->file = f;
        ctx->text = NULL;
        r = parse_one(ctx);
        ctx->file = NULL;
        return r;
}

static bool path_is_dev_null(const char *p) {
        struct stat st;

        return stat(p, &st) >= 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

static int cmp_string(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

/* The *.conf entries in @dir, sorted by strcmp(); none if @dir does not exist. A symlink to /dev/null
 * masks a drop-in (systemd's convention) and is skipped; any other entry that is not a regular file is
 * kept, for parse_path() to refuse rather than have it silently ignored. */
static int list_dropins(const char *dir, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT || errno == ENOTDIR) {
                        *ret = NULL;
                        return 0;
                }
                return negative_errno();
        }

        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                char *p = NULL;

                if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".conf") != 0)
                        continue;
                if (strv_length(l) >= CONFIG_DROPINS_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (path_is_dev_null(p)) {
                        free(p);
                        continue;
                }
                r = strv_consume(&l, p);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0)
                return r;

        if (l)
                qsort(l, strv_length(l), sizeof(char *), cmp_string);
        *ret = TAKE_PTR(l);
        return 0;
}

/**
 * config_load() - read the configuration file and its drop-ins
 * @path: the main file (NULL: VLEASE_CONFIG_PATH); then @path.d/ *.conf in lexical order
 * @ret: the configuration, free with config_free()
 * @ret_error: on failure, text naming the file and line, free() it; may be NULL
 *
 * Return: 0, -EINVAL for a bad configuration, -EPERM for a file others may write, -EISDIR or -EBADFD
 *      for a directory or other file that is not a regular file (a drop-in too), -ENOENT etc. when a
 *      file cannot be read, -ENOMEM
 */
int config_load(const char *path, Config **ret, char **ret_error) {
        ParseContext ctx = {};
        _cleanup_strv_free_ char **dropins = NULL;
        _cleanup_free_ char *dir = NULL;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!path)
                path = VLEASE_CONFIG_PATH;

        r = config_new(&ctx.config);
        if (r < 0)
                return r;

        ctx.filename = path;
        r = parse_path(&ctx, path);
        if (r < 0)
                return finish(&ctx, r, ret, ret_error);

        if (asprintf(&dir, "%s.d", path) < 0)
                return finish(&ctx, -ENOMEM, ret, ret_error);
        {
                struct stat st;
                char why[128];

                /* whoever may add a file here may grant themselves credentials */
                if (stat(dir, &st) >= 0 && S_ISDIR(st.st_mode) && untrusted(&st, 0022, why, sizeof(why))) {
                        ctx.filename = dir;
                        (void) fail_at(&ctx, 0, "%s", why);
                        return finish(&ctx, -EPERM, ret, ret_error);
                }
        }
        r = list_dropins(dir, &dropins);
        if (r < 0) {
                ctx.filename = dir;
                (void) fail_at(&ctx, 0, "cannot read directory: %s", strerror(-r));
                return finish(&ctx, r, ret, ret_error);
        }

        for (char **i = dropins; i && *i; i++) {
                ctx.filename = *i;
                r = parse_path(&ctx, *i);
                if (r < 0)
                        return finish(&ctx, r, ret, ret_error);
        }

        ctx.filename = path;
        return finish(&ctx, 0, ret, ret_error);
}

_printf_(2, 3)
static int secret_error(char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                char *e = NULL;

                va_start(ap, fmt);
                if (vasprintf(&e, fmt, ap) < 0)
                        e = NULL;
                va_end(ap);
                free(*ret_error);
                *ret_error = e;
        }
        return -EINVAL;
}

/* Reads a small secret file into the arena, without its trailing newline. */
static int read_secret_file(const char *path, bool check_mode, Secret **ret, char **ret_error) {
        _cleanup_close_ int fd = -1;
        _cleanup_erase_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;
        int r;

        /* O_NONBLOCK: a FIFO must not hang us in open(); it is refused below */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = negative_errno();
                (void) secret_error(ret_error, "%s: cannot open: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return secret_error(ret_error, "%s: not a regular file", path);
        if (check_mode) {
                char why[128];

                if (untrusted(&st, 0077, why, sizeof(why)))
                        return secret_error(ret_error, "%s: %s; make it readable by the broker only", path, why);
        }
        if (st.st_size > CONFIG_SECRET_FILE_MAX)
                return secret_error(ret_error, "%s: too large", path);

        buf = malloc(CONFIG_SECRET_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, CONFIG_SECRET_FILE_MAX + 1 - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        (void) secret_error(ret_error, "%s: cannot read: %s", path, strerror(-r));
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > CONFIG_SECRET_FILE_MAX)
                        return secret_error(ret_error, "%s: too large", path);
        }

        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        if (n == 0)
                return secret_error(ret_error, "%s: empty", path);
        if (memchr(buf, 0, n) || memchr(buf, '\n', n))
                return secret_error(ret_error, "%s: must hold one line of text", path);

        return secret_new(buf, n, ret);
}

/* $CREDENTIALS_DIRECTORY/@name if it exists, else @file. */
static int load_one(const char *credentials_dir, const char *name, const char *file, const char *key,
                    Secret **ret, char **ret_error) {
        if (credentials_dir) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", credentials_dir, name) < 0)
                        return -ENOMEM;
                if (access(p, F_OK) >= 0)
                        /* systemd made this file for us only: no mode check needed */
                        return read_secret_file(p, false, ret, ret_error);
        }
        if (!file)
                return secret_error(ret_error, "no %s: set [vault] %s or pass the credential '%s'", name, key, name);
        return read_secret_file(file, true, ret, ret_error);
}

/**
 * config_load_secrets() - read the broker's own Vault login secrets into the arena
 * @c: the configuration
 * @credentials_dir: $CREDENTIALS_DIRECTORY or NULL; its role_id, secret_id, token files win over the
 *      [vault] *_file settings
 * @ret_error: on failure, what went wrong (naming the file), free() it; may be NULL
 *
 * AppRole needs role_id and secret_id, token auth needs token. Files named in the configuration must
 * not be readable by others. Trailing newlines are stripped.
 *
 * Return: 0, -EINVAL, -ENOENT etc., -ENOMEM
 */
int config_load_secrets(Config *c, const char *credentials_dir, char **ret_error) {
        Secret *a = NULL, *b = NULL;
        int r;

        if (ret_error)
                *ret_error = NULL;

        if (c->vault.auth == VAULT_AUTH_TOKEN) {
                r = load_one(credentials_dir, "token", c->vault.token_file, "token_file", &a, ret_error);
                if (r < 0)
                        return r;
                secret_free(c->vault.token);
                c->vault.token = a;
                return 0;
        }

        r = load_one(credentials_dir, "role_id", c->vault.role_id_file, "role_id_file", &a, ret_error);
        if (r < 0)
                return r;
        r = load_one(credentials_dir, "secret_id", c->vault.secret_id_file, "secret_id_file", &b, ret_error);
        if (r < 0) {
                secret_free(a);
                return r;
        }
        secret_free(c->vault.role_id);
        secret_free(c->vault.secret_id);
        c->vault.role_id = a;
        c->vault.secret_id = b;
        return 0;
}
