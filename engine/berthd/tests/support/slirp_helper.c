/* A static helper for the userspace network stack's tests, bound into busybox containers.
 *   serve TCP_PORT UDP_PORT  each TCP client and each UDP datagram is answered with
 *                            "from ADDRESS:PORT\n", the peer the container sees
 *   flood IFNAME COUNT       sends COUNT malformed or truncated Ethernet frames on IFNAME */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void peer(const struct sockaddr_storage *ss, char *out, size_t n) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
    } else {
        const struct sockaddr_in6 *s = (const void *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
    }
    snprintf(out, n, "from %s:%d\n", ip, port);
}

static int bound(int type, int port) {
    int s = socket(AF_INET, type, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (void *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    return s;
}

static int serve(int tport, int uport) {
    signal(SIGCHLD, SIG_IGN);
    if (fork() == 0) {
        int u = bound(SOCK_DGRAM, uport);
        char buf[2048], msg[128];
        for (;;) {
            struct sockaddr_storage ss;
            socklen_t l = sizeof ss;
            if (recvfrom(u, buf, sizeof buf, 0, (void *)&ss, &l) < 0) continue;
            peer(&ss, msg, sizeof msg);
            sendto(u, msg, strlen(msg), 0, (void *)&ss, l);
        }
    }
    int t = bound(SOCK_STREAM, tport);
    listen(t, 1024);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t l = sizeof ss;
        int c = accept(t, (void *)&ss, &l);
        if (c < 0) continue;
        char msg[128];
        peer(&ss, msg, sizeof msg);
        (void)!write(c, msg, strlen(msg));
        close(c);
    }
    return 0;
}

static int flood(const char *ifname, long count) {
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s < 0) { perror("socket"); return 1; }
    struct sockaddr_ll a = {.sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(ifname), .sll_halen = 6};
    unsigned char f[1600];
    unsigned int seed = 1;
    long sent = 0;
    for (long i = 0; i < count; i++) {
        size_t len = 14 + rand_r(&seed) % 120;
        for (size_t j = 0; j < len; j++) f[j] = rand_r(&seed);
        memcpy(f, "\x52\x55\x0a\x00\x02\x02", 6); /* to the gateway */
        switch (i % 4) {
        case 0: f[12] = 0x08; f[13] = 0x00; f[14] = 0x45; break;             /* IPv4, garbage after */
        case 1: f[12] = 0x86; f[13] = 0xdd; f[14] = 0x60; break;             /* IPv6, garbage after */
        case 2: f[12] = 0x08; f[13] = 0x00; f[14] = 0x45; f[23] = 6; len = 40; break; /* cut TCP */
        default: break;                                                       /* anything */
        }
        if (sendto(s, f, len, 0, (void *)&a, sizeof a) == (ssize_t)len) sent++;
        if (i % 32 == 31) usleep(100); /* paced: the TAP queue drops what a slow reader misses */
    }
    printf("sent %ld\n", sent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]), atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "flood")) return flood(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: serve TCP_PORT UDP_PORT | flood IFNAME COUNT\n");
    return 2;
}
