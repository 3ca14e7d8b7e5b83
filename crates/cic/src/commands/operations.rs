//! `cic operation`.

use super::*;

#[derive(Subcommand)]
pub enum OperationCmd {
    /// Show an operation (`cic operation wait` waits for it to finish).
    Get { id: String },
    /// Wait until the operation is done.
    Wait { id: String },
    /// Cancel an operation that is not done.
    Cancel { id: String },
}

impl OperationCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            OperationCmd::Get { id } => {
                out.print(&api.get(&format!("/operations/{id}")).await?, pretty)
            }
            OperationCmd::Cancel { id } => {
                let v = api
                    .call(Method::POST, &format!("/operations/{id}:cancel"), None)
                    .await?;
                out.print(&v, pretty);
            }
            OperationCmd::Wait { id } => {
                let op = api.get(&format!("/operations/{id}")).await?;
                let done = api.wait(op, out.timeout).await?;
                out.print(&done, pretty);
            }
        }
        Ok(())
    }
}
