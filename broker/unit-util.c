/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Parsing what identifies a LoadCredential= caller. This is authentication input: the abstract
 * address is chosen by whoever connects (any process that may connect() can bind any abstract name),
 * so it is only a claim, parsed strictly and never trusted alone; the caller compares the unit it
 * names with the unit derived from the peer process's own cgroup (cgroup_unit_from_proc()). Anything
 * that is not exactly the shape systemd produces is rejected: no truncation, no embedded NUL, no
 * second guess about which part is the unit.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/unit-util.h"

#define UNIT_NAME_MAX 255

static const char *const unit_suffixes[] = {
        ".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
        ".timer", ".slice", ".scope",
};

static bool ends_with(const char *s, size_t len, const char *suffix) {
        size_t n = strlen(suffix);

        return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Like unit_name_is_valid() on @len bytes of @s (not NUL-terminated). */
static bool unit_name_is_valid_n(const char *s, size_t len) {
        const char *suffix = NULL, *at;
        size_t prefix;

        if (len == 0 || len > UNIT_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == ':' || c == '-' || c == '_' || c == '.' || c == '\\' || c == '@'))
                        return false;
        }
        for (size_t i = 0; i < sizeof(unit_suffixes) / sizeof(unit_suffixes[0]); i++)
                if (ends_with(s, len, unit_suffixes[i])) {
                        suffix = unit_suffixes[i];
                        break;
                }
        if (!suffix)
                return false;
        prefix = len - strlen(suffix);
        if (prefix == 0)
                return false;
        /* at most one '@', not first; "foo@.service" is a template, never a running unit */
        at = memchr(s, '@', prefix);
        if (at) {
                if (at == s || at == s + prefix - 1 || memchr(at + 1, '@', prefix - (size_t) (at + 1 - s)))
                        return false;
        }
        return true;
}

/**
 * unit_name_is_valid() - whether @name is a syntactically valid, instantiated systemd unit name
 *
 * Return: true for names like "app.service" and "app@x.service"; false for templates ("app@.service"),
 * unknown suffixes, characters systemd does not allow and names over 255 bytes.
 */
bool unit_name_is_valid(const char *name) {
        return name && unit_name_is_valid_n(name, strlen(name));
}

/**
 * credential_peer_address_parse() - split systemd's LoadCredential= client address
 * @sun_path: the sun_path bytes of getpeername()'s result
 * @len:      their number (the address length minus the sun_family field)
 * @ret_unit: the unit name (malloc'd)
 * @ret_id:   the credential id (malloc'd)
 *
 * systemd binds "\0" RANDOM "/unit/" UNIT "/" ID, RANDOM being a u64 in lowercase hex, not zero-padded
 * (1-16 digits). The unit cannot contain '/', so the id starts after the last one.
 *
 * Return: 0, -EBADMSG when the address does not have that shape (a plain client, a path address, a
 * truncated or malformed name), -ENOMEM.
 */
int credential_peer_address_parse(const void *sun_path, size_t len, char **ret_unit, char **ret_id) {
        const char *s = sun_path, *p, *end, *slash;
        size_t hex = 0;
        char *unit, *id;

        if (!s || len < 2 || s[0] != '\0')
                return -EBADMSG;
        end = s + len;
        if (memchr(s + 1, '\0', len - 1))
                return -EBADMSG;
        p = s + 1;
        while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
                p++;
                hex++;
        }
        if (hex < 1 || hex > 16)
                return -EBADMSG;
        if ((size_t) (end - p) < strlen("/unit/") || memcmp(p, "/unit/", strlen("/unit/")) != 0)
                return -EBADMSG;
        p += strlen("/unit/");

        slash = memrchr(p, '/', (size_t) (end - p));
        if (!slash || slash == p || slash + 1 == end)
                return -EBADMSG;
        if (!unit_name_is_valid_n(p, (size_t) (slash - p)))
                return -EBADMSG;

        unit = strndup(p, (size_t) (slash - p));
        id = strndup(slash + 1, (size_t) (end - slash - 1));
        if (!unit || !id) {
                free(unit);
                free(id);
                return -ENOMEM;
        }
        if (!credential_name_is_valid(id)) {
                free(unit);
                free(id);
                return -EBADMSG;
        }
        *ret_unit = unit;
        *ret_id = id;
        return 0;
}

/**
 * cgroup_unit_from_proc() - the system unit a process belongs to, from /proc/PID/cgroup
 * @text:       the file's content
 * @ret_unit:   the unit name (malloc'd)
 * @ret_cgroup: the unit's cgroup path on the cgroup2 hierarchy, e.g. "/system.slice/app.service"
 *              (malloc'd; may be NULL)
 *
 * Uses the cgroup2 line ("0::/path"). As systemd's cg_path_get_unit(): slices are skipped, the first
 * other component is the unit; deeper components (a delegated subtree) belong to it.
 *
 * Return: 0, -ENXIO when the process is in no unit (the root, only slices, a non-unit directory),
 * -EBADMSG when there is no cgroup2 line, -ENOMEM.
 */
int cgroup_unit_from_proc(const char *text, char **ret_unit, char **ret_cgroup) {
        const char *line = text, *path = NULL, *path_end = NULL, *p;

        if (!text)
                return -EBADMSG;
        while (line && *line) {
                const char *nl = strchr(line, '\n');

                if (strncmp(line, "0::", 3) == 0) {
                        path = line + 3;
                        path_end = nl ?: line + strlen(line);
                        break;
                }
                line = nl ? nl + 1 : NULL;
        }
        if (!path || path >= path_end || *path != '/')
                return -EBADMSG;

        p = path;
        while (p < path_end) {
                const char *c, *c_end;

                while (p < path_end && *p == '/')
                        p++;
                if (p >= path_end)
                        break;
                c = p;
                c_end = memchr(c, '/', (size_t) (path_end - c)) ?: path_end;
                p = c_end;
                if (ends_with(c, (size_t) (c_end - c), ".slice"))
                        continue;
                if (!unit_name_is_valid_n(c, (size_t) (c_end - c)))
                        return -ENXIO;

                {
                        char *unit = strndup(c, (size_t) (c_end - c)), *cg = NULL;

                        if (!unit)
                                return -ENOMEM;
                        if (ret_cgroup) {
                                cg = strndup(path, (size_t) (c_end - path));
                                if (!cg) {
                                        free(unit);
                                        return -ENOMEM;
                                }
                                *ret_cgroup = cg;
                        }
                        *ret_unit = unit;
                        return 0;
                }
        }
        return -ENXIO;
}

/**
 * cgroup_events_populated() - the "populated" key of a cgroup2 cgroup.events file
 *
 * Return: 1 when some process is in the cgroup or below it, 0 when none, -EBADMSG when absent.
 */
int cgroup_events_populated(const char *text) {
        const char *line = text;

        while (line && *line) {
                if (strncmp(line, "populated ", 10) == 0) {
                        if (line[10] == '0' && (line[11] == '\n' || line[11] == '\0'))
                                return 0;
                        if (line[10] == '1' && (line[11] == '\n' || line[11] == '\0'))
                                return 1;
                        return -EBADMSG;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return -EBADMSG;
}
