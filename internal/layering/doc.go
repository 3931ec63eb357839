// Package layering has no code: its test holds the import rules the module's structure
// depends on (which packages may import which), so a change that bends them fails CI
// instead of being noticed in a review.
package layering
