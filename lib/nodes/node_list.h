/* node_list.h - every node type the registry knows, one RM_NODE(symbol) line each.
 * A node module defines `const rm_node_type_t symbol` and adds its line here. */
RM_NODE(rm_node_pass_through)
RM_NODE(rm_node_gain)
RM_NODE(rm_node_audio_format)
RM_NODE(rm_node_channel_mix)
RM_NODE(rm_node_chunk)
RM_NODE(rm_node_calculator)
RM_NODE(rm_node_delay)
RM_NODE(rm_node_audio_resample)
RM_NODE(rm_node_loudness_meter)
RM_NODE(rm_node_loudness_normalize)
RM_NODE(rm_node_audio_decode)
RM_NODE(rm_node_audio_encode)
