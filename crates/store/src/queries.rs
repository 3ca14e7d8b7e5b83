//! The store's reads of documents: by id, by folder, parent or link, a page at a time,
//! and the counts and lookups the API's rules ask for.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Document, Error, InContext, Result, Sealing, Store, decode, decode_with_id, list_in, rel,
    u64_at,
};

impl Store {
    pub async fn get<T: Document>(&self, id: &str) -> Result<Option<T>> {
        let row = sqlx::query("SELECT body FROM resources WHERE kind = $1 AND id = $2")
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode::<T>(&self.sealing, &r, id)).transpose()
    }

    /// All documents of a kind (in one folder when given), in id order.
    pub async fn list<T: Document>(&self, folder_id: Option<&str>) -> Result<Vec<T>> {
        list_in(&self.sealing, &self.pool, folder_id).await
    }

    /// The documents of a kind whose parent is `parent_id`, by index.
    pub async fn children<T: Document>(&self, parent_id: &str) -> Result<Vec<T>> {
        let rows = sqlx::query(
            "SELECT id, body FROM resources WHERE kind = $1 AND parent_id = $2 ORDER BY id",
        )
        .bind(T::KIND)
        .bind(parent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_with_id::<T>(&self.sealing, r))
            .collect()
    }

    /// The documents of kind `T` that link to `target` by `rel` (see [`Document::links`]),
    /// by index.
    pub async fn linked<T: Document>(&self, rel: &str, target: &str) -> Result<Vec<T>> {
        let rows = sqlx::query(
            "SELECT r.id, r.body FROM resource_links l JOIN resources r ON r.kind = l.kind AND r.id = l.id \
             WHERE l.rel = $1 AND l.target = $2 AND l.kind = $3 ORDER BY r.id",
        )
        .bind(rel)
        .bind(target)
        .bind(T::KIND)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_with_id::<T>(&self.sealing, r))
            .collect()
    }

    /// For each of `targets`, the id of the document of kind `T` that links to it by
    /// `rel` (a page's routing instances, say), in one query.
    pub async fn linked_ids<T: Document>(
        &self,
        rel: &str,
        targets: &[String],
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        // Within every back end's limit of bound parameters.
        for chunk in targets.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT target, id FROM resource_links WHERE rel = $1 AND kind = $2 AND target IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rel.to_string())
                .bind(T::KIND);
            for t in chunk {
                q = q.bind(t.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Documents of kind `T` by id, in one query (those that exist).
    pub async fn get_many<T: Document>(&self, ids: &[String]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id, body FROM resources WHERE kind = $1 AND id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(T::KIND);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(decode_with_id::<T>(&self.sealing, &r)?);
            }
        }
        Ok(out)
    }

    /// The documents (kind, id) of any kind that link to `target` by `rel` (who holds a
    /// VLAN on a trunk, say), by index.
    pub async fn linking(&self, rel: &str, target: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kind, id FROM resource_links WHERE rel = $1 AND target = $2 ORDER BY kind, id",
        )
        .bind(rel)
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// [`Store::count_children`] leaving out `except` (the document being changed).
    pub async fn count_children_except<T: Document>(
        &self,
        parent_id: &str,
        except: Option<&str>,
    ) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM resources WHERE kind = $1 AND parent_id = $2 AND id <> $3",
        )
        .bind(T::KIND)
        .bind(parent_id)
        .bind(except.unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        u64_at(&row, 0)
    }

    /// The connections (kind, id, trunk) on VLAN `vlan` of any trunk on the wire
    /// `wire_key` ([`rel::wire_key`]): one indexed join, however many trunks share it.
    pub async fn vlan_on_wire(
        &self,
        wire_key: &str,
        vlan: u16,
    ) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT c.kind, c.id, w.id FROM resource_links w JOIN resource_links c \
             ON c.rel = $3 AND c.target = w.id || $4 WHERE w.rel = $1 AND w.target = $2 ORDER BY c.id",
        )
        .bind(rel::WIRE)
        .bind(wire_key)
        .bind(rel::VLAN)
        .bind(format!("|{vlan}"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// [`Store::list_after`] for documents that hang from a parent (connections from their
    /// trunk): each with the parent's own parent (the trunk's edge) and the id of the
    /// document of `owner_kind` that links to it by `rel` (its routing instance), all in
    /// the one query of the page.
    pub async fn list_after_in_context<T: Document>(
        &self,
        folder_id: Option<&str>,
        name: Option<&str>,
        after: Option<&str>,
        limit: u64,
        rel: &str,
        owner_kind: &str,
    ) -> Result<(Vec<InContext<T>>, bool)> {
        // The page first, in index order, then each row's context by index: a cost in
        // proportion to the page whatever the planner thinks of the tables' sizes
        // (PostgreSQL would otherwise hash-join every trunk and link).
        let (page, binds) = page_query(folder_id, name, after, 4, "id, body, parent_id");
        let sql = format!(
            "SELECT q.id, q.body, \
             (SELECT p.parent_id FROM resources p WHERE p.kind = $2 AND p.id = q.parent_id), \
             (SELECT l.id FROM resource_links l WHERE l.rel = $3 AND l.target = q.id AND l.kind = $4 LIMIT 1) \
             FROM ({page}) q ORDER BY q.id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(T::KIND)
            .bind(T::PARENT_KIND)
            .bind(rel.to_string())
            .bind(owner_kind.to_string());
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind((limit + 1) as i64).fetch_all(&self.pool).await?;
        page_of(&rows, limit, |r| in_context::<T>(&self.sealing, r))
    }

    /// The context [`Store::list_after_in_context`] gives, of one document by id.
    pub async fn get_in_context<T: Document>(
        &self,
        id: &str,
        rel: &str,
        owner_kind: &str,
    ) -> Result<Option<InContext<T>>> {
        let row = sqlx::query(
            "SELECT r.id, r.body, p.parent_id, l.id FROM resources r \
             LEFT JOIN resources p ON p.kind = $2 AND p.id = r.parent_id \
             LEFT JOIN resource_links l ON l.rel = $3 AND l.target = r.id AND l.kind = $4 \
             WHERE r.kind = $1 AND r.id = $5",
        )
        .bind(T::KIND)
        .bind(T::PARENT_KIND)
        .bind(rel)
        .bind(owner_kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| in_context::<T>(&self.sealing, r))
            .transpose()
    }

    /// One page of a kind in id order (in a folder, with a name): up to `limit` documents
    /// whose id is after `after`, and whether more follow. A keyset page: a write to an
    /// item (or a new item) never moves another across the page boundary, so paging
    /// neither skips nor repeats, and a page costs its own size.
    pub async fn list_after<T: Document>(
        &self,
        folder_id: Option<&str>,
        name: Option<&str>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<T>, bool)> {
        let (sql, binds) = page_query(folder_id, name, after, 1, "id, body");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(T::KIND);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.bind((limit + 1) as i64).fetch_all(&self.pool).await?;
        page_of(&rows, limit, |r| decode_with_id::<T>(&self.sealing, r))
    }

    /// Whether some document of kind `T` links to `target` by `rel` (one index probe).
    pub async fn is_linked<T: Document>(&self, rel: &str, target: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM resource_links WHERE rel = $1 AND target = $2 AND kind = $3 LIMIT 1",
        )
        .bind(rel)
        .bind(target)
        .bind(T::KIND)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The greatest name of a kind in `folder_id`, read from the end of the name index.
    pub async fn last_name<T: Document>(&self, folder_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT name FROM resources WHERE kind = $1 AND folder_id = $2 \
             ORDER BY kind DESC, folder_id DESC, name DESC LIMIT 1",
        )
        .bind(T::KIND)
        .bind(folder_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<String, _>(0).map_err(Error::from))
            .transpose()
    }

    /// How many documents of a kind hang from `parent_id`.
    pub async fn count_children<T: Document>(&self, parent_id: &str) -> Result<u64> {
        self.count_children_except::<T>(parent_id, None).await
    }

    /// The id of the document of a kind named `name` in a folder, if any, by index.
    pub async fn id_by_name<T: Document>(
        &self,
        folder_id: &str,
        name: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM resources WHERE kind = $1 AND folder_id = $2 AND name = $3 LIMIT 1",
        )
        .bind(T::KIND)
        .bind(folder_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<String, _>(0).map_err(Error::from))
            .transpose()
    }
}

/// The query of one keyset page of a kind (bound as `$1`): `columns` of the documents
/// after `after`, in a folder, with a name, limited by the parameter that follows the
/// others. Its ORDER BY is the index's own column list, so every back end reads the
/// index in order and stops at the limit. `used` parameters come before its own.
fn page_query(
    folder_id: Option<&str>,
    name: Option<&str>,
    after: Option<&str>,
    used: usize,
    columns: &str,
) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {columns} FROM resources WHERE kind = $1");
    let mut n = used;
    let mut binds = Vec::new();
    let mut order = vec!["kind"];
    for (col, v) in [("folder_id", folder_id), ("name", name)] {
        if let Some(v) = v {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
            binds.push(v.to_string());
            order.push(col);
        }
    }
    if let Some(a) = after {
        n += 1;
        sql.push_str(&format!(" AND id > ${n}"));
        binds.push(a.to_string());
    }
    order.push("id");
    sql.push_str(&format!(" ORDER BY {} LIMIT ${}", order.join(", "), n + 1));
    (sql, binds)
}

/// A page of `limit` rows (of the `limit + 1` read: one more says more follow), decoded.
fn page_of<R>(
    rows: &[AnyRow],
    limit: u64,
    decode: impl Fn(&AnyRow) -> Result<R>,
) -> Result<(Vec<R>, bool)> {
    let more = rows.len() as u64 > limit;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(decode)
        .collect::<Result<Vec<R>>>()?;
    Ok((items, more))
}

/// A document (id and body first) with its context: its parent's parent and its owner.
fn in_context<T: Document>(s: &Sealing, r: &AnyRow) -> Result<InContext<T>> {
    Ok(InContext {
        doc: decode_with_id::<T>(s, r)?,
        grandparent: r.try_get::<Option<String>, _>(2)?,
        owner: r.try_get::<Option<String>, _>(3)?,
    })
}
