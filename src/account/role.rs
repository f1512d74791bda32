//! Who may do what: customers, and operators in four roles, each allowed some [`Capability`]s.
//! Stored as `users.role` (`user`, or `admin` for every operator) and `users.operator_role`.

use serde::Serialize;
use utoipa::ToSchema;

/// What an account may do: a customer, or an operator with one of four roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A customer: rents doors, sees only their own things.
    User,
    /// An operator who may do everything: money, revocation, operator accounts.
    Admin,
    /// An operator who serves customers and lockers, but moves no money and revokes nothing.
    Support,
    /// An operator who services doors: maintenance unlocks and door service, and reads.
    Technician,
    /// An operator who only reads.
    Viewer,
}

/// What an operator action needs; each role may do some (see [`Role::may`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read the fleet, the books and the audit log: every operator.
    Read,
    /// Maintenance unlocks, door service, cancelling a queued command: technicians and up.
    DoorService,
    /// Provision, rotate and configure lockers, plans, products and stock, end or cancel a
    /// customer's rental: support and admins.
    Manage,
    /// Move money (top-ups, refunds): admins.
    Money,
    /// Revoke a locker's credentials: admins.
    Revoke,
    /// Create operators and change their roles: admins.
    Accounts,
    /// Upload firmware images for the fleet: admins.
    Firmware,
}

impl Capability {
    /// The roles that may, as a phrase for documents.
    pub fn roles(self) -> &'static str {
        match self {
            Capability::Read => "any operator (viewer, technician, support, admin)",
            Capability::DoorService => "a technician, support or admin",
            Capability::Manage => "support or an admin",
            Capability::Money
            | Capability::Revoke
            | Capability::Accounts
            | Capability::Firmware => "an admin",
        }
    }
}

impl Role {
    /// Whether this is an operator account (any of the four operator roles).
    pub fn is_operator(self) -> bool {
        self != Role::User
    }

    /// Whether this role may do what `capability` covers.
    pub fn may(self, capability: Capability) -> bool {
        use Capability::*;
        match self {
            Role::User => false,
            Role::Admin => true,
            Role::Support => matches!(capability, Read | DoorService | Manage),
            Role::Technician => matches!(capability, Read | DoorService),
            Role::Viewer => capability == Read,
        }
    }

    /// The name in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Support => "support",
            Role::Technician => "technician",
            Role::Viewer => "viewer",
        }
    }

    /// The role for its name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Role::User,
            Role::Admin,
            Role::Support,
            Role::Technician,
            Role::Viewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }

    /// The stored columns: `role` (`user`, or `admin` for every operator) and `operator_role`
    /// (which operator, unless a full admin).
    pub(super) fn columns(self) -> (&'static str, Option<&'static str>) {
        match self {
            Role::User => ("user", None),
            Role::Admin => ("admin", None),
            other => ("admin", Some(other.as_str())),
        }
    }

    pub(super) fn parse(role: &str, operator_role: Option<&str>) -> Self {
        match (role, operator_role) {
            ("admin", None) => Role::Admin,
            ("admin", Some(name)) => Role::from_name(name)
                .filter(|r| r.is_operator())
                .unwrap_or(Role::Viewer),
            _ => Role::User,
        }
    }
}
