/* What a container may do, one line per probe: "NAME OK" or "NAME ERRNO-NAME". Built static
 * (gcc -static) by the isolation tests and bound into busybox containers, under berthd and
 * dockerd alike. Each probe asks the kernel once, in a child of its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void print(const char *name, long r) {
    if (r >= 0) printf("%s OK\n", name);
    else printf("%s %s\n", name, strerrorname_np(errno));
    fflush(stdout);
}

/* Each probe runs in a child of its own: one that succeeds (a new user namespace, a new
 * personality) changes nothing for the next. */
#define report(name, call)                 \
    do {                                   \
        pid_t c_ = fork();                 \
        if (c_ == 0) {                     \
            print(name, (long)(call));     \
            _exit(0);                      \
        }                                  \
        waitpid(c_, 0, 0);                 \
    } while (0)

static long clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, 0, 0);
    return pid;
}

int main(void) {
    static char attr[128];
    mkdir("/probe-mnt", 0755);
    report("getpid", getpid());
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("clone_newuser", clone_newuser());
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, -2 /* process */));
    report("mount", mount("none", "/probe-mnt", "tmpfs", 0, 0));
    report("swapon", syscall(SYS_swapon, "/no-such-swap", 0));
    report("bpf", syscall(SYS_bpf, 0 /* MAP_CREATE */, attr, sizeof attr));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, 0, 0));
    report("personality_query", personality(0xffffffff));
    report("personality_bsd", personality(0x0006));
    report("socket_inet", socket(AF_INET, SOCK_DGRAM, 0));
    report("socket_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("chroot", chroot("/"));
    report("sethostname", sethostname("probe", 5));
    return 0;
}
