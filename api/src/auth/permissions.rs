//! Roles and permissions: the seed's grants (admin `*`; manager `streams:* horses:*
//! analytics:read`; viewer `streams:read horses:read`) and the one pure function that decides.

use serde::{Deserialize, Serialize};

/// A user's role; stored as `admin`, `manager` or `viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Manager, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Viewer => "viewer",
        }
    }

    /// The grant patterns of the role, as the seed writes them.
    pub fn grants(self) -> &'static [&'static str] {
        match self {
            Role::Admin => &["*"],
            Role::Manager => &["streams:*", "horses:*", "analytics:read"],
            Role::Viewer => &["streams:read", "horses:read"],
        }
    }

    /// Every permission this role holds, in [`Permission::ALL`] order.
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|&p| allows(self, p))
            .collect()
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "manager" => Ok(Role::Manager),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a route or a socket event requires, written `resource:action`.
///
/// The seed names the resources `streams`, `horses` and `analytics`; `models` and `users` are
/// ours (only `*`, i.e. admin, grants them). Start/stop and PTZ are `streams:control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    StreamsRead,
    StreamsWrite,
    StreamsControl,
    HorsesRead,
    HorsesWrite,
    AnalyticsRead,
    AnalyticsWrite,
    ModelsRead,
    ModelsWrite,
    UsersRead,
    UsersWrite,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::StreamsRead,
        Permission::StreamsWrite,
        Permission::StreamsControl,
        Permission::HorsesRead,
        Permission::HorsesWrite,
        Permission::AnalyticsRead,
        Permission::AnalyticsWrite,
        Permission::ModelsRead,
        Permission::ModelsWrite,
        Permission::UsersRead,
        Permission::UsersWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::StreamsRead => "streams:read",
            Permission::StreamsWrite => "streams:write",
            Permission::StreamsControl => "streams:control",
            Permission::HorsesRead => "horses:read",
            Permission::HorsesWrite => "horses:write",
            Permission::AnalyticsRead => "analytics:read",
            Permission::AnalyticsWrite => "analytics:write",
            Permission::ModelsRead => "models:read",
            Permission::ModelsWrite => "models:write",
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether one grant pattern (`*`, `resource:*` or `resource:action`) covers `permission`.
pub fn grant_covers(grant: &str, permission: &str) -> bool {
    if grant == "*" || grant == permission {
        return true;
    }
    match (grant.split_once(':'), permission.split_once(':')) {
        (Some((g_res, "*")), Some((p_res, _))) => g_res == p_res,
        _ => false,
    }
}

/// The authorisation decision: does `role` hold `permission`?
pub fn allows(role: Role, permission: Permission) -> bool {
    role.grants()
        .iter()
        .any(|g| grant_covers(g, permission.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    /// The full matrix, written out by hand from the seed: every role × every permission.
    #[test]
    fn role_permission_matrix() {
        #[rustfmt::skip]
        let table: &[(Permission, bool, bool, bool)] = &[
            //                 admin manager viewer
            (StreamsRead,      true, true,  true),
            (StreamsWrite,     true, true,  false),
            (StreamsControl,   true, true,  false),
            (HorsesRead,       true, true,  true),
            (HorsesWrite,      true, true,  false),
            (AnalyticsRead,    true, true,  false),
            (AnalyticsWrite,   true, false, false),
            (ModelsRead,       true, false, false),
            (ModelsWrite,      true, false, false),
            (UsersRead,        true, false, false),
            (UsersWrite,       true, false, false),
        ];
        assert_eq!(
            table.len(),
            Permission::ALL.len(),
            "every permission is in the table"
        );
        for &(p, admin, manager, viewer) in table {
            assert_eq!(allows(Role::Admin, p), admin, "admin {p}");
            assert_eq!(allows(Role::Manager, p), manager, "manager {p}");
            assert_eq!(allows(Role::Viewer, p), viewer, "viewer {p}");
        }
    }

    #[test]
    fn grant_patterns() {
        assert!(grant_covers("*", "anything:at_all"));
        assert!(grant_covers("streams:*", "streams:read"));
        assert!(grant_covers("streams:read", "streams:read"));
        assert!(!grant_covers("streams:read", "streams:write"));
        assert!(!grant_covers("streams:*", "streamsx:read"));
        assert!(!grant_covers("stream:*", "streams:read"));
        assert!(!grant_covers("streams:*", "streams"));
        assert!(!grant_covers("", "streams:read"));
    }

    #[test]
    fn permission_names_are_unique_and_well_formed() {
        let mut names: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        for n in &names {
            let (res, action) = n.split_once(':').expect("resource:action");
            assert!(!res.is_empty() && !action.is_empty() && action != "*");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
