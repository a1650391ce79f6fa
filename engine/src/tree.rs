//! Deleting a directory tree a container may have written: [`remove_tree`]. std's
//! `remove_dir_all` recurses, holding a file descriptor and a stack frame per level, so a tree a
//! few tens of thousands of directories deep (a shell loop of `mkdir d; cd d`) either fails
//! with "too many open files" (leaving it all behind) or overflows the stack and aborts the
//! daemon. This walk is iterative: at most [`MAX_OPEN`] directories are open at once; a
//! subtree deeper than that is moved up to the top of the tree (a rename on the same file
//! system) and emptied from there. It never follows a symbolic link and never crosses a
//! mount point (a mount found inside is an error, its content untouched).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::{Dir, OwningIter, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// How many directories of a tree are open at once, at most.
pub const MAX_OPEN: usize = 64;

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Whether `name` in `dir` is the root of a mount (statx's `STATX_ATTR_MOUNT_ROOT`, which
/// also sees bind mounts of the same file system), or on another device than `dev`.
fn is_mount(dir: BorrowedFd<'_>, name: &CStr, dev: u64, flags: i32) -> io::Result<bool> {
    // SAFETY: an all-zero statx is a valid value, filled in by the call below.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a valid C string, `stx` a valid buffer, `dir` an open descriptor.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | flags,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if r == 0 {
        let mount_root = stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0
            && stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
        let other_dev = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev;
        return Ok(mount_root || other_dev);
    }
    let st = if name.is_empty() {
        nix::sys::stat::fstat(dir)
    } else {
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
    };
    Ok(st.map_err(err)?.st_dev != dev)
}

/// Removes `path` and everything under it, as `rm -rf` would but bounded in open files and
/// stack whatever its depth, without following links or crossing mount points. A path
/// that does not exist is done; a file or link is unlinked.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let top = match nix::fcntl::open(path, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::ENOTDIR | Errno::ELOOP) => {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
        }
        Err(e) => return Err(err(e)),
    };
    let dev = nix::sys::stat::fstat(&top).map_err(err)?.st_dev;
    // A pass empties the tree but for the subtrees it moved up; each pass moves fewer.
    let mut moved = 0u64;
    while empty(&top, dev, &mut moved)? {}
    drop(top);
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// How many names a move up tries before it gives up (names the tree's own files took).
const MAX_TRIES: u32 = 1000;

/// Whether the directory open as `fd` is a mount's root or on another device than `dev`
/// (checked on the directory opened, so it cannot be swapped after the check).
fn fd_is_mount(fd: BorrowedFd<'_>, dev: u64) -> io::Result<bool> {
    is_mount(fd, c"", dev, libc::AT_EMPTY_PATH)
}

/// One pass over the tree under `top`: every file and directory removed, but for
/// subtrees past [`MAX_OPEN`] levels, moved up into `top` (`moved` counts them, naming
/// them); whether any was.
fn empty(top: &OwnedFd, dev: u64, moved_total: &mut u64) -> io::Result<bool> {
    let first = Dir::openat(top, c".", dir_flags(), Mode::empty()).map_err(err)?;
    // Each open level: its entries as they are read, and its name in the level above.
    let mut stack: Vec<(OwningIter, Option<CString>)> = vec![(first.into_iter(), None)];
    let mut moved = false;
    while let Some((entries, _)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            let (done, name) = stack.pop().expect("a level is open");
            drop(done);
            if let (Some(name), Some((parent, _))) = (name, stack.last()) {
                // SAFETY: the parent level's descriptor stays open while it is on the stack.
                let parent = unsafe { BorrowedFd::borrow_raw(parent.as_raw_fd()) };
                match unlinkat(parent, name.as_c_str(), UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            continue;
        };
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let name = name.to_owned();
        // SAFETY: this level's descriptor stays open while it is on the stack.
        let here = unsafe { BorrowedFd::borrow_raw(entries.as_raw_fd()) };
        let is_dir = match entry.file_type() {
            Some(t) => t == Type::Directory,
            None => match fstatat(here, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(err(e)),
            },
        };
        if !is_dir {
            match unlinkat(here, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(err(e)),
            }
            continue;
        }
        let mount_point = || {
            io::Error::other(format!(
                "{} is a mount point: not removed",
                OsStr::from_bytes(name.to_bytes()).to_string_lossy()
            ))
        };
        match is_mount(here, &name, dev, 0) {
            Ok(false) => {}
            Ok(true) => return Err(mount_point()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        }
        // An empty directory goes at once, without being opened.
        match unlinkat(here, name.as_c_str(), UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => continue,
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        if stack.len() >= MAX_OPEN {
            // Too deep to open: moved up under `top` (never over anything there: a name the
            // tree's own files took is skipped), emptied by the next pass.
            let mut tries = 0;
            loop {
                *moved_total += 1;
                tries += 1;
                let to = CString::new(format!(".berth-deep-{}", *moved_total)).expect("no NUL");
                match renameat2(
                    here,
                    name.as_c_str(),
                    top.as_fd(),
                    to.as_c_str(),
                    RenameFlags::RENAME_NOREPLACE,
                ) {
                    Ok(()) => break,
                    Err(Errno::ENOENT) => break,
                    Err(_) if tries < MAX_TRIES => continue,
                    Err(e) => return Err(err(e)),
                }
            }
            moved = true;
            continue;
        }
        let child = match openat(here, name.as_c_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err(e)),
        };
        if fd_is_mount(child.as_fd(), dev)? {
            return Err(mount_point());
        }
        let child = Dir::from_fd(child).map_err(err)?;
        stack.push((child.into_iter(), Some(name)));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(root: &Path, depth: usize) {
        // Made relative to a descriptor, as a container's shell would: no path is too long.
        let mut dir = nix::fcntl::open(root, dir_flags(), Mode::empty()).unwrap();
        for i in 0..depth {
            nix::sys::stat::mkdirat(&dir, c"d", Mode::from_bits_truncate(0o755)).unwrap();
            if i % 100 == 0 {
                let f = openat(
                    &dir,
                    c"f",
                    OFlag::O_CREAT | OFlag::O_WRONLY,
                    Mode::from_bits_truncate(0o644),
                )
                .unwrap();
                drop(f);
            }
            dir = openat(&dir, c"d", dir_flags(), Mode::empty()).unwrap();
        }
    }

    #[test]
    fn a_tree_deeper_than_std_can_remove_is_removed_on_a_small_stack() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        deep(&root, 20_000);
        std::fs::create_dir_all(root.join("wide")).unwrap();
        for i in 0..300 {
            std::fs::write(root.join("wide").join(i.to_string()), b"x").unwrap();
            std::fs::create_dir(root.join("wide").join(format!("dir{i}"))).unwrap();
        }
        std::os::unix::fs::symlink("/", root.join("wide/escape")).unwrap();
        // Names a move up would take, planted: skipped, never replaced or a failure.
        for i in 1..4 {
            std::fs::write(root.join(format!(".berth-deep-{i}")), b"planted").unwrap();
        }
        // 64 KiB of stack: a recursive walk would need far more for 20,000 levels.
        let r = root.clone();
        let removed = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || remove_tree(&r))
            .unwrap()
            .join()
            .unwrap();
        removed.unwrap();
        assert!(!root.exists());
        assert!(Path::new("/").exists(), "the link was followed");
    }

    #[test]
    fn a_mount_inside_is_not_crossed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: mount points not tested");
            return;
        }
        // In a mount namespace of this thread's own, so nothing is left mounted on the host.
        std::thread::spawn(|| {
            use nix::mount::{MsFlags, mount, umount};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let tree = tmp.path().join("tree");
            let (fs, bind, src) = (
                tree.join("a/tmpfs"),
                tree.join("b/bind"),
                tmp.path().join("src"),
            );
            for d in [&fs, &bind, &src] {
                std::fs::create_dir_all(d).unwrap();
            }
            std::fs::write(src.join("keep"), b"k").unwrap();
            mount(
                Some("tmpfs"),
                &fs,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            std::fs::write(fs.join("keep"), b"k").unwrap();
            let e = remove_tree(&tree).unwrap_err().to_string();
            assert!(e.contains("tmpfs is a mount point"), "{e}");
            assert!(fs.join("keep").exists());
            umount(&fs).unwrap();
            // A bind mount of the same file system is a mount too (the first removal may
            // have taken its empty mount point).
            std::fs::create_dir_all(&bind).unwrap();
            mount(
                Some(&src),
                &bind,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
            let e = remove_tree(&tree).unwrap_err().to_string();
            assert!(e.contains("bind is a mount point"), "{e}");
            assert!(src.join("keep").exists());
            umount(&bind).unwrap();
            remove_tree(&tree).unwrap();
            assert!(!tree.exists() && src.join("keep").exists());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn links_files_and_missing_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(!link.exists() && outside.join("keep").exists());
        let file = tmp.path().join("file");
        std::fs::write(&file, b"f").unwrap();
        remove_tree(&file).unwrap();
        assert!(!file.exists());
        remove_tree(&tmp.path().join("missing")).unwrap();
        // A link inside a tree is removed, never followed.
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/out")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists() && outside.join("keep").exists());
    }
}
