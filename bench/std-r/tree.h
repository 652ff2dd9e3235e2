/* Removing a directory tree std-r made (temporary state directories). */
#ifndef STD_R_TREE_H
#define STD_R_TREE_H

/* rm -r @path, best effort: what cannot go stays. */
void remove_tree(const char *path);

#endif
