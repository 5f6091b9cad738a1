"""Moving tags and blame on Podman: the Docker tests themselves (imported, so that they cannot
drift apart), run against an isolated Podman service. On Podman the walk untags by the planned
image's id (`POST /libpod/images/{id}/untag`: "tag not known" when the tag names another image),
so the race is held at that request; the rest is the same as on Docker."""

from __future__ import annotations

from tests.reliability import test_blame, test_moving_tags

test_a_tag_that_moves_mid_walk_stays_on_the_new_release = (
    test_moving_tags.test_a_tag_that_moves_mid_walk_stays_on_the_new_release
)
test_a_refused_removal_puts_back_only_tags_no_other_image_holds = (
    test_moving_tags.test_a_refused_removal_puts_back_only_tags_no_other_image_holds
)
test_images_someone_else_removed_after_a_kill_are_not_recorded_as_nodegcs = (
    test_blame.test_images_someone_else_removed_after_a_kill_are_not_recorded_as_nodegcs
)
