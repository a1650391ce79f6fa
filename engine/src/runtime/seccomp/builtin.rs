//! Docker's default seccomp profile, as berth's tables: every container that asks for no
//! other profile gets it. What it does, as Docker's (moby 25 and later):
//! - a syscall no rule allows fails with EPERM;
//! - [`ALLOWED`] work for everyone; `socket` for every family but AF_VSOCK; `personality`
//!   with the personas a process may ask for (Linux, 32-bit, UNAME26 and the query);
//! - `clone` without namespace flags for everyone, `clone3` fails with ENOSYS (so libc falls
//!   back to `clone`, whose flags the filter can see) unless the container has CAP_SYS_ADMIN;
//! - [`BY_CAPABILITY`]: what a capability allows comes with it (`mount`, `unshare`, `setns`,
//!   `bpf` with CAP_SYS_ADMIN, `ptrace` and friends with CAP_SYS_PTRACE, ...);
//! - [`BY_ARCH`]: architecture-specific calls on their architectures;
//! - `ptrace` and `process_vm_*` on kernels from 4.8 (which closed the seccomp bypass).
//!
//! Left out, so failing with EPERM: `keyctl`, `add_key`, `request_key`, `kexec_*`,
//! `swapon`/`swapoff`, `userfaultfd`, `io_uring_*`, `pivot_root`, `open_by_handle_at`
//! (without CAP_DAC_READ_SEARCH), module loading, clock setting, and every syscall added to
//! the kernel after these tables.

use super::{ArchMap, Arg, Filter, Profile, Rule};

/// Allowed for every container.
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Allowed with a capability.
pub const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_DAC_READ_SEARCH",
        &["name_to_handle_at", "open_by_handle_at"],
    ),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Allowed on some architectures (Go's names).
pub const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// The namespace flags `clone` may not carry without CAP_SYS_ADMIN: CLONE_NEWNS,
/// CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `socket`'s family refused to everyone.
pub const AF_VSOCK: u64 = 40;
/// `personality` values allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
pub const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// ENOSYS, what `clone3` answers without CAP_SYS_ADMIN.
const ENOSYS: u32 = 38;

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: strings(names),
        action: "SCMP_ACT_ALLOW".into(),
        ..Rule::default()
    }
}

fn arg(index: u32, value: u64, op: &str) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op: op.into(),
    }
}

/// The profile.
pub fn profile() -> Profile {
    let mut rules = vec![allow(ALLOWED)];
    rules.push(Rule {
        args: vec![arg(0, AF_VSOCK, "SCMP_CMP_NE")],
        ..allow(&["socket"])
    });
    for p in PERSONAS {
        rules.push(Rule {
            args: vec![arg(0, p, "SCMP_CMP_EQ")],
            ..allow(&["personality"])
        });
    }
    rules.push(Rule {
        includes: Filter {
            min_kernel: "4.8".into(),
            ..Filter::default()
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    for (arches, names) in BY_ARCH {
        rules.push(Rule {
            includes: Filter {
                arches: strings(arches),
                ..Filter::default()
            },
            ..allow(names)
        });
    }
    for (cap, names) in BY_CAPABILITY {
        rules.push(Rule {
            includes: Filter {
                caps: strings(&[cap]),
                ..Filter::default()
            },
            ..allow(names)
        });
    }
    let no_admin = Filter {
        caps: strings(&["CAP_SYS_ADMIN"]),
        ..Filter::default()
    };
    // s390 passes clone's flags second.
    let s390 = strings(&["s390", "s390x"]);
    rules.push(Rule {
        args: vec![arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
        excludes: Filter {
            arches: s390.clone(),
            ..no_admin.clone()
        },
        ..allow(&["clone"])
    });
    rules.push(Rule {
        args: vec![arg(1, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
        includes: Filter {
            arches: s390,
            ..Filter::default()
        },
        excludes: no_admin.clone(),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        names: strings(&["clone3"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        excludes: no_admin,
        ..Rule::default()
    });
    let arch = |main: &str, subs: &[&str]| ArchMap {
        architecture: main.into(),
        sub_architectures: strings(subs),
    };
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(1),
        arch_map: vec![
            arch("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            arch("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
            arch(
                "SCMP_ARCH_MIPS64",
                &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
            ),
            arch(
                "SCMP_ARCH_MIPSEL64",
                &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
            ),
            arch("SCMP_ARCH_PPC64LE", &[]),
            arch("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
            arch("SCMP_ARCH_RISCV64", &[]),
        ],
        syscalls: rules,
        ..Profile::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Target, compile};
    use super::*;

    fn names_allowed(caps: &[&str]) -> Vec<String> {
        let caps: Vec<String> = strings(caps);
        let v = compile(
            &profile(),
            &Target {
                caps: &caps,
                arch: "amd64",
                kernel: (6, 1),
            },
        );
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_profile_is_valid_and_compiles_per_capability() {
        profile().validate().unwrap();
        let dflt = names_allowed(&["CAP_CHOWN", "CAP_SYS_CHROOT"]);
        for blocked in [
            "keyctl",
            "add_key",
            "bpf",
            "unshare",
            "mount",
            "kexec_load",
            "swapon",
            "open_by_handle_at",
            "setns",
            "userfaultfd",
            "io_uring_setup",
        ] {
            assert!(!dflt.iter().any(|n| n == blocked), "{blocked} allowed");
        }
        for ok in ["read", "arch_prctl", "ptrace", "chroot", "getpid"] {
            assert!(dflt.iter().any(|n| n == ok), "{ok} refused");
        }
        let admin = names_allowed(&["CAP_SYS_ADMIN"]);
        for ok in ["mount", "unshare", "setns", "bpf", "clone", "clone3"] {
            assert!(
                admin.iter().any(|n| n == ok),
                "{ok} refused with CAP_SYS_ADMIN"
            );
        }
        assert!(!admin.iter().any(|n| n == "chroot"));
        // The profile's JSON is Docker's format: it reads back as itself.
        let text = serde_json::to_string(&profile()).unwrap();
        assert_eq!(Profile::parse(&text).unwrap(), profile());
    }

    #[test]
    fn clone_is_filtered_and_clone3_answers_enosys_without_sys_admin() {
        let caps = strings(&["CAP_CHOWN"]);
        let v = compile(
            &profile(),
            &Target {
                caps: &caps,
                arch: "amd64",
                kernel: (6, 1),
            },
        );
        let rules = v["syscalls"].as_array().unwrap();
        let clone: Vec<_> = rules.iter().filter(|r| r["names"][0] == "clone").collect();
        assert_eq!(clone.len(), 1, "the s390 rule is left out on amd64");
        assert_eq!(clone[0]["args"][0]["value"], CLONE_NAMESPACE_FLAGS);
        assert_eq!(clone[0]["args"][0]["index"], 0);
        let clone3 = rules.iter().find(|r| r["names"][0] == "clone3").unwrap();
        assert_eq!(clone3["errnoRet"], 38);
        assert_eq!(v["defaultErrnoRet"], 1);
    }
}
