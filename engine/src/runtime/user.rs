//! `--user` against the image's `/etc/passwd` and `/etc/group`: `name`, `uid`, `name:group`,
//! `uid:gid`; the user's primary group when none is given, and the supplementary groups that
//! list the user. Pure: the files' text comes in.

/// The process's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups.
    pub additional: Vec<u32>,
    /// The home directory (for `HOME`), when known.
    pub home: Option<String>,
}

/// Why `--user` could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name not in /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name not in /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(Passwd {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn groups(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f.get(3).map_or(Vec::new(), |m| {
            m.split(',').filter(|s| !s.is_empty()).collect()
        });
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

/// Resolves `spec` (empty means root).
pub fn resolve(spec: &str, passwd_text: &str, group_text: &str) -> Result<Ids, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd(passwd_text).find(|p| p.uid == uid),
        Err(_) => Some(
            passwd(passwd_text)
                .find(|p| p.name == user)
                .ok_or_else(|| UserError::NoUser(user.to_string()))?,
        ),
    };
    let uid = user
        .parse::<u32>()
        .unwrap_or_else(|_| entry.as_ref().map_or(0, |e| e.uid));
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups(group_text)
                .find(|(n, _, _)| *n == g)
                .map(|(_, id, _)| id)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
        None => entry.as_ref().map_or(0, |e| e.gid),
    };
    let name = entry.as_ref().map(|e| e.name);
    let mut additional: Vec<u32> = match name {
        Some(n) if group.is_none() => groups(group_text)
            .filter(|(_, id, members)| *id != gid && members.contains(&n))
            .map(|(_, id, _)| id)
            .collect(),
        _ => Vec::new(),
    };
    additional.dedup();
    Ok(Ids {
        uid,
        gid,
        additional,
        home: entry.map(|e| e.home.to_string()).filter(|h| !h.is_empty()),
    })
}

/// Adds `--group-add` groups to `ids`: numbers as they are, names looked up in the image's
/// `/etc/group` (unknown names refused, as Docker's).
pub fn add_groups(ids: &mut Ids, add: &[String], group_text: &str) -> Result<(), UserError> {
    for g in add {
        let gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups(group_text)
                .find(|(name, _, _)| name == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| UserError::NoGroup(g.clone()))?,
        };
        if !ids.additional.contains(&gid) {
            ids.additional.push(gid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_add_takes_numbers_and_the_images_names() {
        let mut ids = Ids::default();
        add_groups(
            &mut ids,
            &["1234".into(), "audio".into(), "1234".into()],
            "audio:x:29:\n",
        )
        .unwrap();
        assert_eq!(ids.additional, [1234, 29]);
        assert_eq!(
            add_groups(&mut ids, &["video".into()], "audio:x:29:\n")
                .unwrap_err()
                .to_string(),
            "unable to find group video: no matching entries in group file"
        );
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\napp:x:1000:\nvideo:x:44:app,www\naudio:x:29:app\n";

    #[test]
    fn names_ids_and_groups() {
        let r = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_deref()), (0, 0, Some("/root")));
        let a = resolve("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (a.uid, a.gid, a.additional.clone()),
            (1000, 1000, vec![44, 29])
        );
        assert_eq!(resolve("33", PASSWD, GROUP).unwrap().gid, 33);
        let x = resolve("4242:4343", PASSWD, GROUP).unwrap();
        assert_eq!(
            (x.uid, x.gid, x.home),
            (4242, 4343, None),
            "numeric IDs need no entry"
        );
        assert_eq!(resolve("www:video", PASSWD, GROUP).unwrap().gid, 44);
        assert_eq!(
            resolve("nobody", PASSWD, GROUP),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve("app:staff", PASSWD, GROUP),
            Err(UserError::NoGroup("staff".into()))
        );
        assert_eq!(
            resolve("1000", "", "").unwrap().gid,
            0,
            "no passwd file: group 0"
        );
    }
}
