"""Where images come from: git revisions, checkouts of them that never touch the user's tree, and builds."""
