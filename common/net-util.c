/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "common/net-util.h"

/**
 * host_is_loopback() - is this URL host a loopback address?
 * @host: a host as it appears in a URL: a name, an IPv4 address, or an IPv6 address in brackets
 *
 * Only "localhost" and literal addresses in 127.0.0.0/8 or ::1 count: a name such as
 * "127.0.0.1.example.com" resolves wherever its owner likes, so it is not loopback.
 *
 * Return: true for a loopback host
 */
bool host_is_loopback(const char *host) {
        struct in_addr a4;
        struct in6_addr a6;
        char buf[INET6_ADDRSTRLEN + 1];
        size_t n;

        if (!host)
                return false;
        if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;

        n = strlen(host);
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
                memcpy(buf, host + 1, n - 2);
                buf[n - 2] = 0;
                host = buf;
        }
        return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}
