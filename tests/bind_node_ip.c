/* LD_PRELOAD shim for the test cluster (tests/cluster_fixtures.py): a bind() to the wildcard address (0.0.0.0 or
 * ::) binds to $BIND_NODE_IP instead (an IPv4 address; ::ffff:IP on a dual-stack IPv6 socket, ::1 on an IPv6-only
 * one). Every other bind() and every process without $BIND_NODE_IP is left alone.
 *
 * Why: Ray 2.60 listens on every interface unless the node's address is localhost (127.0.0.1): its C++ gRPC servers
 * (GCS, the raylet's node manager and object manager, every core worker) take listen_to_localhost_only from that
 * comparison, and so do the dashboard agent's gRPC and metrics servers (is_localhost(ip) in dashboard/agent.py and
 * dashboard/modules/reporter/reporter_agent.py). No flag, environment variable or system config changes it, so
 * without this shim a node on 127.0.0.2 or 127.0.0.3 listens on the machine's real interfaces. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *ip = getenv("BIND_NODE_IP");
    struct in_addr node;
    if (!ip || !addr || inet_pton(AF_INET, ip, &node) != 1) return real_bind(fd, addr, len);
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr != htonl(INADDR_ANY)) return real_bind(fd, addr, len);
        a.sin_addr = node;
        return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (!IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) return real_bind(fd, addr, len);
        int v6only = 0;
        socklen_t optlen = sizeof v6only;
        memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
        if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && v6only) {
            a.sin6_addr = in6addr_loopback;
        } else {
            a.sin6_addr.s6_addr[10] = a.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a.sin6_addr.s6_addr[12], &node, sizeof node);
        }
        return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
    return real_bind(fd, addr, len);
}
