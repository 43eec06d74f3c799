"""Small widgets that render plain view objects; none of them reads the store or a device."""
