//! Securing a topology tree created before dbrouter had a ZooKeeper identity
//! (`dbrouter ctl topology secure`): the ACL of [`ZkStore::acls`] on every node.

use zookeeper_client as zk;

use super::zk::{zk_err, ZkStore};
use super::TopologyError;

impl ZkStore {
    /// Puts the ACL of [`ZkStore::acls`] (everything for this store's digest identity,
    /// reading for anyone) on the root and every node under it: secures a tree created
    /// before `zk_user` was configured. Returns how many nodes were changed. Refused
    /// without a digest identity (the ACL would lock everybody out, this store included).
    pub async fn restrict_tree(&self) -> Result<usize, TopologyError> {
        if self.target().digest.is_none() {
            return Err(TopologyError::Zk(
                "no ZooKeeper identity: set [topology] zk_user and zk_password first (the ACL gives that identity all permissions)".into(),
            ));
        }
        let acls = self.acls();
        let mut pending = vec![self.target().root.clone()];
        let mut changed = 0;
        while let Some(path) = pending.pop() {
            let children = match self.client().list_children(&path).await {
                Ok(children) => children,
                // Gone meanwhile (an ephemeral registration, a finished move).
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(zk_err(format!("{path}: {e}"))),
            };
            match self.client().set_acl(&path, &acls, None).await {
                Ok(_) => changed += 1,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(zk_err(format!("setting the ACL of {path}: {e}"))),
            }
            let base = path.trim_end_matches('/');
            pending.extend(children.into_iter().map(|c| format!("{base}/{c}")));
        }
        Ok(changed)
    }
}
